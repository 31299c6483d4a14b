//! Content-addressed layers: unpacking a (possibly gzipped) tar stream into a
//! directory while hashing its uncompressed bytes.
//!
//! The digest of a layer is `sha256:<hex>` of the *uncompressed* tar stream,
//! which is what OCI calls the layer's diff id. An OCI importer hands each
//! layer blob to [`ImageStore::add_layer_from_tar`](super::ImageStore::add_layer_from_tar)
//! and gets the same digest that the image config lists in `rootfs.diff_ids`.

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ImageError;

/// One read-only layer of the store, unpacked on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    /// `sha256:<hex>` of the uncompressed layer tar (the OCI diff id).
    pub digest: String,
    /// Bytes of regular-file content in the unpacked layer.
    pub size: u64,
    /// The unpacked tree: `<root>/layers/sha256/<hex>/rootfs`.
    pub dir: PathBuf,
}

impl Layer {
    /// The layer as the wire protocol describes it.
    pub fn info(&self) -> protocol::LayerInfo {
        protocol::LayerInfo {
            digest: self.digest.clone(),
            size: self.size,
            path: self.dir.display().to_string(),
        }
    }
}

/// `layer.json`, next to the unpacked `rootfs/`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct LayerRecord {
    pub digest: String,
    pub size: u64,
    pub created_at_ms: u64,
}

/// A uid/gid shift at import: every owner in the archive would be stored as
/// `host_base + id` (for ids below `count`).
///
/// Not implemented, on purpose: containers run in user namespaces with
/// per-container id ranges, and see layers through an idmapped mount of the
/// layer store (see `crate::userns`), so layers stay owned by host root on
/// disk and one copy serves every range. A shifted layer would be a
/// different tree for each range (same digest, different owners).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdShift {
    pub host_base: u32,
    pub count: u32,
}

/// How a layer tar is unpacked.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct UnpackOptions {
    /// See [`IdShift`]: must be `None`.
    pub id_shift: Option<IdShift>,
}

/// What unpacking produced.
#[derive(Debug)]
pub(crate) struct Unpacked {
    /// `sha256:<hex>` of the uncompressed stream.
    pub digest: String,
    /// Bytes of regular-file content written.
    pub size: u64,
}

/// Hashes everything read through it.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether the stream starts with the gzip magic bytes (without consuming them).
fn is_gzip<R: BufRead>(reader: &mut R) -> io::Result<bool> {
    // A 64 KiB BufReader over a file or socket sees at least two bytes on its
    // first fill unless the stream is shorter than that (then it is not gzip).
    let buf = reader.fill_buf()?;
    Ok(buf.len() >= 2 && buf[..2] == GZIP_MAGIC)
}

/// Unpack a tar stream (plain or gzip, detected by magic bytes) into `dest`,
/// which must exist and be empty. Returns the digest of the uncompressed tar.
///
/// Safety rules, all enforced here or by `tar::Entry::unpack_in`:
/// - an entry whose path or hard-link target has a `..` component fails the whole
///   import (we never silently skip);
/// - absolute paths are made relative to `dest`;
/// - a write through a symlink already unpacked in the tree is refused
///   (`unpack_in` canonicalizes the parent and checks it is under `dest`), and an
///   entry that replaces a symlink unlinks it rather than writing through it;
/// - character and block devices are skipped with a log line: containers get
///   `/dev` from the runtime.
///
/// Permissions, ownerships, mtimes and xattrs are kept as the archive says.
pub(crate) fn unpack<R: Read>(
    reader: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<Unpacked, ImageError> {
    if opts.id_shift.is_some() {
        return Err(ImageError::Unsupported {
            what: "unpacking a layer with a uid/gid shift",
        });
    }
    let tar_err = |source: io::Error| ImageError::Tar {
        dest: dest.to_path_buf(),
        source,
    };
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let gz = is_gzip(&mut buffered).map_err(tar_err)?;
    let stream: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let hashing = HashingReader {
        inner: stream,
        hasher: Sha256::new(),
    };

    let mut archive = tar::Archive::new(hashing);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(true);
    archive.set_overwrite(true);

    let mut size: u64 = 0;
    let mut entries_seen: u64 = 0;
    let mut directories = Vec::new();
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        entries_seen += 1;
        let path = entry.path().map_err(tar_err)?.into_owned();
        check_entry_path(&path)?;
        let kind = entry.header().entry_type();
        if kind.is_hard_link() {
            if let Some(target) = entry.link_name().map_err(tar_err)? {
                check_entry_path(&target)?;
            }
        }
        if kind.is_character_special() || kind.is_block_special() {
            tracing::info!(path = %path.display(), "skipping device node in layer tar");
            continue;
        }
        if kind.is_dir() {
            // Directories last (deepest first), like tar's own `unpack`, so that
            // their modes and mtimes are not disturbed by what goes inside.
            directories.push(entry);
            continue;
        }
        if kind.is_file() || kind == tar::EntryType::Continuous {
            size = size.saturating_add(entry.header().entry_size().map_err(tar_err)?);
        }
        entry.unpack_in(dest).map_err(tar_err)?;
    }
    directories.sort_by(|a, b| b.path_bytes().cmp(&a.path_bytes()));
    for mut dir in directories {
        dir.unpack_in(dest).map_err(tar_err)?;
    }

    // tar stops at the end-of-archive blocks; the digest covers the whole stream.
    let mut hashing = archive.into_inner();
    io::copy(&mut hashing, &mut io::sink()).map_err(tar_err)?;
    let digest = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
    tracing::debug!(dest = %dest.display(), %digest, size, entries = entries_seen, gzip = gz, "unpacked layer tar");
    Ok(Unpacked { digest, size })
}

/// Reject any path with a `..` component. Leading `/` is fine: `unpack_in`
/// strips it.
fn check_entry_path(path: &Path) -> Result<(), ImageError> {
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(ImageError::UnsafeEntry {
            path: path.display().to_string(),
            reason: "a `..` component would reach outside the layer",
        });
    }
    Ok(())
}
