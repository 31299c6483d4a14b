//! The warm pool's shell entries: containers that already run the image's
//! shell on a terminal, claimed by a create that asks for nothing but
//! limits. Real containers, as root.

mod common;

use common::{assert_entry_goes, entry_cgroup_dirs, pool_entries, wait_for, Env, Screen};
use runtime::process::client::Client;
use runtime::process::wire::{Request, Target};
use std::time::Duration;

/// Fill the pool with one shell entry and wait until it is ready; its id.
fn ready_shell_entry(env: &Env, extra: &[&str]) -> String {
    let mut args = vec!["--shell-pool", "1", "--warm-pool", "0"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["pool", "fill"]);
    env.ok(&args);
    wait_for("a ready shell entry", Duration::from_secs(10), || {
        pool_entries(env)
            .into_iter()
            .find(|(_, kind, state)| kind == "shell" && state == "ready")
            .map(|(id, _, _)| id)
    })
}

fn attach(env: &Env, id: &str) -> Client {
    let socket = env
        .path()
        .join("containers")
        .join(id)
        .join("supervisor.sock");
    let mut client = Client::connect(&socket).expect("connect");
    client
        .send(Request::Attach {
            target: Target::Main,
            since: Some(0),
        })
        .expect("attach");
    client
}

#[test]
fn shell_entry_is_claimed_running_with_its_limits_and_records_its_exit() {
    let env = Env::new();
    let entry = ready_shell_entry(&env, &[]);
    // A detached create with a terminal and nothing else: the shell entry.
    let id = env
        .ok(&[
            "--shell-pool",
            "1",
            "--warm-pool",
            "0",
            "run",
            "-dit",
            "-m",
            "48m",
            "--pids-limit",
            "12",
            "--disk",
            "8m",
            "busybox",
        ])
        .trim()
        .to_string();
    assert_eq!(id, entry, "the create did not take the running shell");
    assert!(!env.path().join("pool").join(&id).exists());
    let info = env.inspect(&id);
    assert_eq!(info["state"], "running", "{info}");
    assert_eq!(info["limits"]["memory_bytes"], 48 << 20, "{info}");
    let stats = env.stats(&id);
    assert_eq!(stats["memory_limit"], 48 << 20, "{stats}");
    assert_eq!(stats["pids_limit"], 12, "{stats}");
    // Its prompt was printed while it waited in the pool, and replays.
    let mut client = attach(&env, &id);
    let mut screen = Screen::default();
    screen.wait(&mut client, "# ");
    client
        .send_input(b"hostname; df -k / | tail -1; echo $((6*7))\n")
        .expect("input");
    screen.wait(&mut client, &id[..12]);
    screen.wait(&mut client, " 8192 ");
    screen.wait(&mut client, "42");
    // The shell is PID 1's child, in the container's namespaces.
    let ps = env.ok(&["exec", &id, "ps", "-o", "pid,comm"]);
    assert!(ps.contains("sh"), "{ps}");
    // Its supervisor followed the claim: the exit lands in containers/<id>.
    client.send_input(b"exit 5\n").expect("input");
    drop(client);
    let info = wait_for("the exit", Duration::from_secs(10), || {
        let i = env.inspect(&id);
        (i["state"] == "exited").then_some(i)
    });
    assert_eq!(info["exit_code"], 5, "{info}");
    env.ok(&["rm", &id]);
    env.ok(&["pool", "drain"]);
    env.assert_clean();
}

#[test]
fn creates_that_ask_for_more_than_limits_do_not_take_a_shell_entry() {
    let env = Env::new();
    let entry = ready_shell_entry(&env, &[]);
    let pool = ["--shell-pool", "1", "--warm-pool", "0"];
    for extra in [
        vec!["-dit", "--name", "named", "busybox"],
        vec!["-dit", "-e", "A=1", "busybox"],
        vec!["-dit", "--no-init", "busybox"],
        vec!["-d", "busybox", "sleep", "30"],
    ] {
        let mut args = pool.to_vec();
        args.push("run");
        args.extend_from_slice(&extra);
        let id = env.ok(&args).trim().to_string();
        assert_ne!(id, entry, "{extra:?} took the shell entry");
        env.ok(&["rm", "-f", &id]);
    }
    assert!(env.path().join("pool").join(&entry).exists());
    env.ok(&["pool", "drain"]);
    env.assert_clean();
}

#[test]
fn unclaimed_shell_entries_remove_themselves_when_idle_or_when_their_shell_ends() {
    let env = Env::new();
    // Idle: gone after the idle timeout, with its cgroup and RW layer.
    let idle = ready_shell_entry(&env, &["--warm-idle-secs", "1"]);
    let entry = env.path().join("pool").join(&idle);
    let dirs = entry_cgroup_dirs(&entry);
    assert_entry_goes("the idle shell entry to go", &entry, dirs);
    // Its shell killed while it waits: the entry goes too, nothing is recorded.
    let ended = ready_shell_entry(&env, &[]);
    let entry = env.path().join("pool").join(&ended);
    let dirs = entry_cgroup_dirs(&entry);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(entry.join("state.json")).expect("state.json"))
            .expect("json");
    let pid1 = state["host_pid"].as_i64().expect("host pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid1),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the entry's PID 1");
    assert_entry_goes("the ended shell entry to go", &entry, dirs);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(
        !mounts.contains(&idle) && !mounts.contains(&ended),
        "RW layer left"
    );
    assert!(env.container_dirs().is_empty());
}

/// A long-lived caller (the server) claims through one runtime, which lists
/// the pool once for a run of claims: an entry another process took since
/// is passed over, and one made since is found once the listing runs out.
#[test]
fn a_runtime_claims_through_its_listing_of_the_pool() {
    let env = Env::new();
    let fill = || {
        env.ok(&["--shell-pool", "2", "--warm-pool", "0", "pool", "fill"]);
        wait_for("two ready shell entries", Duration::from_secs(10), || {
            let ready: Vec<String> = pool_entries(&env)
                .into_iter()
                .filter(|(_, kind, state)| kind == "shell" && state == "ready")
                .map(|(id, _, _)| id)
                .collect();
            (ready.len() == 2).then_some(ready)
        })
    };
    let first = fill();
    let rt = runtime::Runtime::open(runtime::RuntimeOptions {
        shell_pool: 2,
        refill_on_claim: false,
        ..runtime::RuntimeOptions::new(env.path())
    })
    .expect("runtime");
    let opts = runtime::CreateOptions {
        image: "busybox".into(),
        init: true,
        tty: true,
        interactive: true,
        ..Default::default()
    };
    let claim = || {
        rt.claim_running_shell(&opts)
            .expect("claim")
            .map(|started| started.info.id)
    };
    // Lists both, takes one.
    let a = claim().expect("a ready entry");
    assert!(first.contains(&a), "{a} is not one of {first:?}");
    // Another process takes the other one.
    let b = env
        .ok(&[
            "--shell-pool",
            "2",
            "--warm-pool",
            "0",
            "run",
            "-dit",
            "busybox",
        ])
        .trim()
        .to_string();
    assert!(
        first.contains(&b) && b != a,
        "{b} is not the other of {first:?}"
    );
    // Two more are made; the runtime's listing still names only b's.
    let second = fill();
    let c = claim().expect("an entry made after the listing");
    assert!(second.contains(&c), "{c} is not one of {second:?}");
    let d = claim().expect("the last entry");
    assert!(
        second.contains(&d) && d != c,
        "{d} is not the other of {second:?}"
    );
    assert_eq!(claim(), None, "the pool is empty");
    for id in [&a, &b, &c, &d] {
        env.ok(&["rm", "-f", id]);
    }
    env.assert_clean();
}
