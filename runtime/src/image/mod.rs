//! The image store: images as ordered lists of read-only, content-addressed layers.
//!
//! Layout under the store's root (Glassbox uses `/var/lib/glassbox`):
//!
//! ```text
//! <root>/.lock                               flock held around every mutation
//! <root>/layers/sha256/<hex>/rootfs/         an unpacked layer, stored once
//! <root>/layers/sha256/<hex>/layer.json      {digest, size, created_at_ms}
//! <root>/layers/.tmp-<random>/               a layer being unpacked (renamed into place)
//! <root>/images/<name>.json                  {name, layers: [digest, ...] lowest first, created_at_ms}
//! ```
//!
//! A layer's digest is `sha256:<hex>` of its uncompressed tar stream (the OCI
//! diff id), so [`ImageStore::add_layer_from_tar`] is the one way in, for
//! `gbx import`, the built-in busybox image and a future OCI importer alike.
//!
//! Names are `[a-z0-9][a-z0-9._-]{0,63}` with an optional `:tag` of the same
//! characters. `name:latest` and `name` are the same image.

mod busybox;
mod cache;
mod layer;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

pub use busybox::{BUSYBOX_IMAGE, HOST_BUSYBOX};
pub use layer::{IdShift, Layer, UnpackOptions};

use layer::LayerRecord;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot lock the image store at {path}: {source}")]
    Lock { path: PathBuf, source: nix::Error },
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("image {name:?} not found")]
    NotFound { name: String },
    #[error("image {image:?} refers to layer {digest} which is not in the store")]
    LayerMissing { image: String, digest: String },
    #[error("corrupt image store record {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot unpack layer tar into {dest}: {source}")]
    Tar { dest: PathBuf, source: io::Error },
    #[error("layer tar entry {path:?} rejected: {reason}")]
    UnsafeEntry { path: String, reason: &'static str },
    #[error(
        "the built-in busybox image needs a static busybox at {path}: install it with `apt-get install busybox-static`"
    )]
    BusyboxMissing { path: PathBuf },
    #[error(
        "{path} is not a statically linked ELF binary (install `busybox-static`, not `busybox`)"
    )]
    BusyboxNotStatic { path: PathBuf },
    #[error("cannot list busybox applets with `{path} --list-full`: {reason}")]
    BusyboxApplets { path: PathBuf, reason: String },
    #[error("cannot build the busybox layer tar: {source}")]
    BusyboxTar { source: io::Error },
    #[error("{what} is not supported yet")]
    Unsupported { what: &'static str },
}

impl ImageError {
    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ImageError {
        let path = path.to_path_buf();
        move |source| ImageError::Io { op, path, source }
    }
}

/// An image: a name and its layers, lowest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub name: String,
    pub layers: Vec<Layer>,
    pub created_at_ms: u64,
}

impl Image {
    /// The image as the wire protocol describes it.
    pub fn info(&self) -> protocol::ImageInfo {
        protocol::ImageInfo {
            name: self.name.clone(),
            layers: self.layers.iter().map(Layer::info).collect(),
            created_at_ms: self.created_at_ms,
        }
    }

    /// The layers' unpacked directories, lowest first (what overlayfs wants as
    /// `lowerdir`, reversed).
    pub fn layer_dirs(&self) -> Vec<&Path> {
        self.layers.iter().map(|l| l.dir.as_path()).collect()
    }
}

/// `images/<name>.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct ImageRecord {
    name: String,
    layers: Vec<String>,
    created_at_ms: u64,
}

/// The image store rooted at one directory. Cheap to open; safe to share
/// between threads and to open from several processes at once.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    busybox_builds: AtomicUsize,
    cache: cache::ImageCache,
}

/// Holding this means holding the store's flock.
struct StoreLock {
    _lock: Flock<File>,
}

impl ImageStore {
    /// Open (creating its directories if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Self, ImageError> {
        let store = ImageStore {
            root: root.to_path_buf(),
            busybox_builds: AtomicUsize::new(0),
            cache: cache::ImageCache::default(),
        };
        for dir in [store.layers_dir(), store.images_dir()] {
            fs::create_dir_all(&dir).map_err(ImageError::io("create directory", &dir))?;
        }
        tracing::debug!(root = %root.display(), "opened image store");
        Ok(store)
    }

    /// The directory holding every layer of the store at `root`: the one a
    /// container's user namespace sees through an idmapped mount.
    pub fn layers_root(root: &Path) -> PathBuf {
        root.join("layers")
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Find an image by name. The built-in `busybox` image is built on first
    /// use (once, however many callers ask at the same time).
    pub fn resolve(&self, name: &str) -> Result<Image, ImageError> {
        let name = normalize_name(name)?;
        match self.load_image(&name)? {
            Some(image) => Ok(image),
            None if name == BUSYBOX_IMAGE => {
                let lock = self.lock()?;
                if let Some(image) = self.load_image(&name)? {
                    return Ok(image);
                }
                self.build_busybox(&lock)
            }
            None => Err(ImageError::NotFound { name }),
        }
    }

    /// Like [`resolve`](Self::resolve), but never builds anything.
    pub fn resolve_existing(&self, name: &str) -> Result<Image, ImageError> {
        let name = normalize_name(name)?;
        self.load_image(&name)?.ok_or(ImageError::NotFound { name })
    }

    /// Import a tarball (plain or gzip) as a one-layer image called `name`,
    /// replacing any image of that name.
    pub fn import(&self, name: &str, tarball: &Path) -> Result<Image, ImageError> {
        let name = normalize_name(name)?;
        let file = File::open(tarball).map_err(ImageError::io("open tarball", tarball))?;
        let lock = self.lock()?;
        let layer = self.add_layer_locked(&lock, file, &UnpackOptions::default())?;
        let image = self.write_image_locked(&lock, &name, vec![layer])?;
        tracing::info!(image = %name, tarball = %tarball.display(), digest = %image.layers[0].digest, "imported image");
        Ok(image)
    }

    /// Unpack a layer tar stream (plain or gzip) into the store, or find it
    /// there already, and return it. This is the entry point for every layer:
    /// an OCI importer calls it once per layer blob, then [`Self::create_image`].
    ///
    /// A layer that no image refers to yet can be collected by a concurrent
    /// [`Self::remove`]; `create_image` fails cleanly (`LayerMissing`) if so.
    pub fn add_layer_from_tar<R: io::Read>(&self, reader: R) -> Result<Layer, ImageError> {
        self.add_layer_from_tar_with(reader, &UnpackOptions::default())
    }

    /// [`Self::add_layer_from_tar`] with options (see [`UnpackOptions`]).
    pub fn add_layer_from_tar_with<R: io::Read>(
        &self,
        reader: R,
        opts: &UnpackOptions,
    ) -> Result<Layer, ImageError> {
        let lock = self.lock()?;
        self.add_layer_locked(&lock, reader, opts)
    }

    /// Record an image made of layers already in the store (digests, lowest
    /// first), replacing any image of that name.
    pub fn create_image(&self, name: &str, digests: &[String]) -> Result<Image, ImageError> {
        let name = normalize_name(name)?;
        let lock = self.lock()?;
        let layers = digests
            .iter()
            .map(|d| {
                self.load_layer(d)?.ok_or_else(|| ImageError::LayerMissing {
                    image: name.clone(),
                    digest: d.clone(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.write_image_locked(&lock, &name, layers)
    }

    /// Every image in the store, sorted by name. The built-in busybox image is
    /// listed once it has been built. Unreadable records are logged and skipped.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let mut images = Vec::new();
        for name in self.image_names()? {
            match self.load_image(&name) {
                Ok(Some(image)) => images.push(image),
                Ok(None) => {} // removed meanwhile
                Err(err) => {
                    tracing::warn!(image = %name, error = %err, "skipping unreadable image")
                }
            }
        }
        images.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(images)
    }

    /// Remove the image record, then delete layers no image references any more, except those in `layers_in_use`
    /// (digests still used by containers).
    pub fn remove(&self, name: &str, layers_in_use: &HashSet<String>) -> Result<(), ImageError> {
        let name = normalize_name(name)?;
        let lock = self.lock()?;
        let path = self.image_path(&name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ImageError::NotFound { name });
            }
            Err(e) => return Err(ImageError::io("remove", &path)(e)),
        }
        tracing::info!(image = %name, "removed image");
        self.collect_garbage_locked(&lock, layers_in_use)
    }

    /// How many times this handle built the busybox image (for tests).
    #[doc(hidden)]
    pub fn busybox_builds(&self) -> usize {
        self.busybox_builds.load(Ordering::SeqCst)
    }

    // ----- internals -----

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers").join("sha256")
    }

    fn scratch_root(&self) -> PathBuf {
        Self::layers_root(&self.root)
    }

    fn images_dir(&self) -> PathBuf {
        self.root.join("images")
    }

    fn image_path(&self, normalized: &str) -> PathBuf {
        self.images_dir().join(format!("{normalized}.json"))
    }

    fn lock(&self) -> Result<StoreLock, ImageError> {
        let path = self.root.join(".lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ImageError::io("open lock file", &path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, source)| ImageError::Lock { path, source })?;
        Ok(StoreLock { _lock: lock })
    }

    fn build_busybox(&self, lock: &StoreLock) -> Result<Image, ImageError> {
        let tar = busybox::build_tar(Path::new(HOST_BUSYBOX))?;
        let layer = self.add_layer_locked(lock, io::Cursor::new(tar), &UnpackOptions::default())?;
        let image = self.write_image_locked(lock, BUSYBOX_IMAGE, vec![layer])?;
        self.busybox_builds.fetch_add(1, Ordering::SeqCst);
        tracing::info!(image = BUSYBOX_IMAGE, digest = %image.layers[0].digest, "built the busybox image");
        Ok(image)
    }

    fn add_layer_locked<R: io::Read>(
        &self,
        _lock: &StoreLock,
        reader: R,
        opts: &UnpackOptions,
    ) -> Result<Layer, ImageError> {
        self.remove_scratch_locked();
        let scratch = self
            .scratch_root()
            .join(format!(".tmp-{}", random_suffix()));
        let rootfs = scratch.join("rootfs");
        fs::create_dir_all(&rootfs).map_err(ImageError::io("create directory", &rootfs))?;
        let result = self.place_layer(&scratch, &rootfs, reader, opts);
        if scratch.exists() {
            if let Err(e) = fs::remove_dir_all(&scratch) {
                tracing::warn!(path = %scratch.display(), error = %e, "cannot remove scratch layer directory");
            }
        }
        result
    }

    fn place_layer<R: io::Read>(
        &self,
        scratch: &Path,
        rootfs: &Path,
        reader: R,
        opts: &UnpackOptions,
    ) -> Result<Layer, ImageError> {
        fs::set_permissions(rootfs, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .map_err(ImageError::io("set permissions on", rootfs))?;
        let unpacked = layer::unpack(reader, rootfs, opts)?;
        if let Some(existing) = self.load_layer(&unpacked.digest)? {
            tracing::debug!(digest = %existing.digest, "layer already in the store");
            return Ok(existing);
        }
        let hex = digest_hex(&unpacked.digest).ok_or_else(|| ImageError::Corrupt {
            path: scratch.to_path_buf(),
            reason: format!("unexpected digest {}", unpacked.digest),
        })?;
        let record = LayerRecord {
            digest: unpacked.digest.clone(),
            size: unpacked.size,
            created_at_ms: now_ms(),
        };
        write_json(&scratch.join("layer.json"), &record)?;
        let dest = self.layers_dir().join(hex);
        if dest.exists() {
            // A directory without a readable layer.json: a leftover; replace it.
            tracing::warn!(path = %dest.display(), "replacing incomplete layer directory");
            fs::remove_dir_all(&dest).map_err(ImageError::io("remove", &dest))?;
        }
        fs::rename(scratch, &dest).map_err(ImageError::io("move layer into place at", &dest))?;
        tracing::info!(digest = %record.digest, size = record.size, "added layer");
        Ok(Layer {
            digest: record.digest,
            size: record.size,
            dir: dest.join("rootfs"),
        })
    }

    /// Remove `.tmp-*` and `.trash-*` leftovers of crashed imports or removals.
    /// Only called with the lock held, when no import can be in progress.
    fn remove_scratch_locked(&self) {
        let dir = self.scratch_root();
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".tmp-") || name.starts_with(".trash-") {
                let path = entry.path();
                tracing::info!(path = %path.display(), "removing leftover scratch directory");
                if let Err(e) = fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove leftover");
                }
            }
        }
    }

    fn write_image_locked(
        &self,
        _lock: &StoreLock,
        name: &str,
        layers: Vec<Layer>,
    ) -> Result<Image, ImageError> {
        let record = ImageRecord {
            name: name.to_string(),
            layers: layers.iter().map(|l| l.digest.clone()).collect(),
            created_at_ms: now_ms(),
        };
        write_json(&self.image_path(name), &record)?;
        Ok(Image {
            name: record.name,
            layers,
            created_at_ms: record.created_at_ms,
        })
    }

    fn image_names(&self) -> Result<Vec<String>, ImageError> {
        let dir = self.images_dir();
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(ImageError::io("read directory", &dir))? {
            let entry = entry.map_err(ImageError::io("read directory", &dir))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if validate_name(name).is_ok() {
                names.push(name.to_string());
            }
        }
        Ok(names)
    }

    fn load_image_record(&self, name: &str) -> Result<Option<ImageRecord>, ImageError> {
        let path = self.image_path(name);
        let Some(bytes) = read_file(&path)? else {
            return Ok(None);
        };
        parse_image_record(name, &path, &bytes).map(Some)
    }

    /// The image `name` as its record on disk says, its layers' records
    /// read again only when the record has changed (see [`cache::ImageCache`]).
    fn load_image(&self, name: &str) -> Result<Option<Image>, ImageError> {
        let path = self.image_path(name);
        let Some(bytes) = read_file(&path)? else {
            self.cache.forget(name);
            return Ok(None);
        };
        if let Some(image) = self.cache.get(name, &bytes) {
            return Ok(Some(image));
        }
        let record = parse_image_record(name, &path, &bytes)?;
        let mut layers = Vec::with_capacity(record.layers.len());
        for digest in &record.layers {
            let layer = self
                .load_layer(digest)?
                .ok_or_else(|| ImageError::LayerMissing {
                    image: name.to_string(),
                    digest: digest.clone(),
                })?;
            layers.push(layer);
        }
        let image = Image {
            name: record.name,
            layers,
            created_at_ms: record.created_at_ms,
        };
        self.cache.put(name, bytes, &image);
        Ok(Some(image))
    }

    fn load_layer(&self, digest: &str) -> Result<Option<Layer>, ImageError> {
        let hex = digest_hex(digest).ok_or_else(|| ImageError::Corrupt {
            path: self.layers_dir(),
            reason: format!("invalid layer digest {digest:?}"),
        })?;
        let dir = self.layers_dir().join(hex);
        let json = dir.join("layer.json");
        let Some(record) = read_json::<LayerRecord>(&json)? else {
            return Ok(None);
        };
        if record.digest != digest {
            return Err(ImageError::Corrupt {
                path: json,
                reason: format!("records digest {}", record.digest),
            });
        }
        Ok(Some(Layer {
            digest: record.digest,
            size: record.size,
            dir: dir.join("rootfs"),
        }))
    }

    fn collect_garbage_locked(
        &self,
        _lock: &StoreLock,
        layers_in_use: &HashSet<String>,
    ) -> Result<(), ImageError> {
        self.remove_scratch_locked();
        // Any unreadable image record aborts: better to keep a layer than to
        // delete one an image still needs.
        let mut keep: HashSet<String> = layers_in_use.clone();
        for name in self.image_names()? {
            if let Some(record) = self.load_image_record(&name)? {
                keep.extend(record.layers);
            }
        }
        let dir = self.layers_dir();
        for entry in fs::read_dir(&dir).map_err(ImageError::io("read directory", &dir))? {
            let entry = entry.map_err(ImageError::io("read directory", &dir))?;
            let hex = entry.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{hex}");
            if keep.contains(&digest) {
                continue;
            }
            // Rename first so that a crash never leaves a half-deleted layer
            // that looks complete.
            let path = entry.path();
            let trash = self
                .scratch_root()
                .join(format!(".trash-{}", random_suffix()));
            fs::rename(&path, &trash).map_err(ImageError::io("move away unused layer", &path))?;
            fs::remove_dir_all(&trash).map_err(ImageError::io("remove unused layer", &trash))?;
            tracing::info!(%digest, "removed unused layer");
        }
        Ok(())
    }
}

/// `<hex>` of `sha256:<hex>`, if it is 64 lowercase hex digits.
fn digest_hex(digest: &str) -> Option<&str> {
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(hex)
}

fn valid_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && matches!(bytes[0], b'a'..=b'z' | b'0'..=b'9')
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

/// Check an image name: `[a-z0-9][a-z0-9._-]{0,63}` with an optional `:tag`
/// of the same form. Nothing else (no `/`, no leading `.`) gets through, so a
/// name is always a safe file name.
pub fn validate_name(name: &str) -> Result<(), ImageError> {
    let invalid = |reason| ImageError::InvalidName {
        name: name.to_string(),
        reason,
    };
    let (repo, tag) = match name.split_once(':') {
        Some((repo, tag)) => (repo, Some(tag)),
        None => (name, None),
    };
    if !valid_component(repo) {
        return Err(invalid(
            "a name is 1 to 64 of a-z 0-9 . _ - and starts with a letter or digit",
        ));
    }
    if let Some(tag) = tag {
        if !valid_component(tag) {
            return Err(invalid(
                "a tag is 1 to 64 of a-z 0-9 . _ - and starts with a letter or digit",
            ));
        }
    }
    Ok(())
}

/// Validate a name and drop a `:latest` tag (`busybox:latest` is `busybox`).
pub fn normalize_name(name: &str) -> Result<String, ImageError> {
    validate_name(name)?;
    Ok(name.strip_suffix(":latest").unwrap_or(name).to_string())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn random_suffix() -> String {
    let mut buf = [0u8; 8];
    if getrandom::fill(&mut buf).is_err() {
        // Uniqueness is all we need; the lock already excludes other writers.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf = (nanos as u64 ^ u64::from(std::process::id())).to_le_bytes();
    }
    hex::encode(buf)
}

/// Write JSON through a temp file, fsync, then rename over `path`.
fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".tmp-{}.json", random_suffix()));
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| ImageError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot serialize: {e}"),
    })?;
    let write = || -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        ImageError::io("write", path)(e)
    })
}

/// The file's bytes, or `None` if there is no such file.
fn read_file(path: &Path) -> Result<Option<Vec<u8>>, ImageError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ImageError::io("read", path)(e)),
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(path: &Path, bytes: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Read JSON; `None` if the file does not exist.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, ImageError> {
    read_file(path)?
        .map(|bytes| parse_json(path, &bytes))
        .transpose()
}

/// An image record that must name the image `name` it was read for.
fn parse_image_record(name: &str, path: &Path, bytes: &[u8]) -> Result<ImageRecord, ImageError> {
    let record: ImageRecord = parse_json(path, bytes)?;
    if record.name != name {
        return Err(ImageError::Corrupt {
            path: path.to_path_buf(),
            reason: format!("names image {:?}", record.name),
        });
    }
    Ok(record)
}

#[cfg(test)]
mod tests;
