//! The escape suite's verdicts: every attempt ends up as one row of a table
//! (class | attempt | result), and a class fails when any of its rows escaped.

use std::fmt::Write as _;
use std::io::Write as _;

/// What became of one attempt.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The attempt failed the way a defence makes it fail; says how.
    Blocked(String),
    /// The attempt worked (or failed for a reason that proves nothing); says what was seen.
    Escaped(String),
}

/// The rows of one class, printed as a table when the class is done.
pub struct Report {
    class: &'static str,
    rows: Vec<(String, Outcome)>,
}

/// Output of one shell snippet run inside a container.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    /// stdout then stderr.
    pub out: String,
}

/// The error texts busybox prints for the errnos a defence produces.
pub const EPERM: (&str, &str) = ("EPERM", "Operation not permitted");
pub const EACCES: (&str, &str) = ("EACCES", "Permission denied");
pub const EROFS: (&str, &str) = ("EROFS", "Read-only file system");
pub const ENOSPC: (&str, &str) = ("ENOSPC", "No space left on device");
pub const ENOENT: (&str, &str) = ("ENOENT", "No such file or directory");
pub const ENXIO: (&str, &str) = ("ENXIO", "No such device or address");
pub const ENOSYS: (&str, &str) = ("ENOSYS", "Function not implemented");
pub const ECONNREFUSED: (&str, &str) = ("ECONNREFUSED", "Connection refused");
pub const ENETUNREACH: (&str, &str) = ("ENETUNREACH", "Network is unreachable");
pub const ETIMEDOUT: (&str, &str) = ("timeout", "timed out");

impl Report {
    pub fn new(class: &'static str) -> Report {
        Report {
            class,
            rows: Vec::new(),
        }
    }

    pub fn blocked(&mut self, attempt: impl Into<String>, how: impl Into<String>) {
        self.rows
            .push((attempt.into(), Outcome::Blocked(how.into())));
    }

    pub fn escaped(&mut self, attempt: impl Into<String>, seen: impl Into<String>) {
        self.rows
            .push((attempt.into(), Outcome::Escaped(seen.into())));
    }

    /// Blocked when `ok` holds, with `how`; escaped otherwise, with `seen`.
    pub fn verdict(&mut self, attempt: &str, ok: bool, how: &str, seen: &str) {
        if ok {
            self.blocked(attempt, how);
        } else {
            self.escaped(attempt, seen);
        }
    }

    /// The attempt must have failed (non-zero exit) with one of `errors`
    /// in its output; anything else (success, or another error, which would
    /// prove nothing about the defence) is an escape.
    pub fn expect_error(&mut self, attempt: &str, run: &Run, errors: &[(&str, &str)]) {
        let hit = errors.iter().find(|(_, text)| run.out.contains(text));
        match hit {
            Some((errno, _)) if run.code != 0 => {
                self.blocked(attempt, format!("{errno}, exit {}", run.code))
            }
            _ => self.escaped(attempt, format!("exit {}: {}", run.code, brief(&run.out))),
        }
    }

    pub fn escapes(&self) -> usize {
        self.rows
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Escaped(_)))
            .count()
    }

    /// Print the table (and append it to the run's report file), then fail
    /// if anything escaped.
    pub fn finish(self) {
        let mut table = String::new();
        for (attempt, outcome) in &self.rows {
            let result = match outcome {
                Outcome::Blocked(how) => format!("blocked: {how}"),
                Outcome::Escaped(seen) => format!("ESCAPED: {seen}"),
            };
            // A shell pipe in an attempt must not split the markdown cell.
            let attempt = attempt.replace('|', "\\|");
            let _ = writeln!(table, "| {} | {} | {} |", self.class, attempt, result);
        }
        println!("| class | attempt | result |\n|---|---|---|\n{table}");
        if let Some(path) = report_file() {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(table.as_bytes());
            }
        }
        let n = self.escapes();
        assert_eq!(n, 0, "{}: {n} attempt(s) escaped:\n{table}", self.class);
    }
}

/// Where every class appends its rows, so that one run gives one table
/// (`scripts/test` prints it after the unit stage). Set by
/// `GLASSBOX_ESCAPE_REPORT`; unset: the rows are only printed.
fn report_file() -> Option<std::path::PathBuf> {
    std::env::var_os("GLASSBOX_ESCAPE_REPORT").map(Into::into)
}

/// One line of output, short enough for a table cell.
pub fn brief(s: &str) -> String {
    let one: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "/");
    if one.chars().count() > 120 {
        format!("{}…", one.chars().take(120).collect::<String>())
    } else {
        one
    }
}
