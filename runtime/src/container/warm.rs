//! The runtime's side of the warm pool (see [`crate::pool`]): claiming a
//! running shell entry, refilling, and the pool's views.

use super::{container_config, CreateOptions, Result, Runtime, Started};
use crate::cgroups::{Cgroup, CgroupRecord};
use crate::failpoint;
use crate::image::Image;
use crate::pool;
use crate::rootfs;
use crate::userns::IdRange;
use protocol::Limits;
use std::path::PathBuf;

/// What a shell entry of the warm pool runs: a create of `image` that asks
/// for nothing but limits (the limits are set when it is claimed).
pub(super) fn shell_options(image: &str) -> CreateOptions {
    CreateOptions {
        image: image.to_string(),
        init: true,
        tty: true,
        interactive: true,
        ..CreateOptions::default()
    }
}

/// Whether a create asks for exactly what a shell entry runs, but for its
/// limits (set when it is claimed).
pub(super) fn wants_shell(opts: &CreateOptions, warm_image: &str) -> bool {
    opts.image == warm_image
        && CreateOptions {
            limits: Limits::default(),
            ..opts.clone()
        } == shell_options(warm_image)
}

impl Runtime {
    /// Whether a create with `opts` is one a running shell of the pool
    /// serves (when one is ready): it asks for nothing but limits.
    pub fn wants_running_shell(&self, opts: &CreateOptions) -> bool {
        self.shell_pool > 0 && wants_shell(opts, &self.warm_image)
    }

    /// Create by taking a running shell from the pool, if one is ready for
    /// `opts`; `Ok(None)` if not, and
    /// [`Runtime::create_without_running_shell`] makes it another way
    /// ([`Runtime::create`] tries this first). A caller can so give these claims, which
    /// take turns on the state lock anyway, an order of its own.
    pub fn claim_running_shell(&self, opts: &CreateOptions) -> Result<Option<Started>> {
        if !self.wants_running_shell(opts) {
            return Ok(None);
        }
        let image = self.images.resolve(&opts.image)?;
        // The rest of the claim could do without the lock, but a burst of
        // claims that take turns has its first prompts sooner than one whose
        // claims all share the CPU and end together (p50 29–30 ms against
        // 53–58 ms for 50 at once).
        let _lock = self.state.lock()?;
        let Some(entry) = pool::take(&self.state, &image.layer_dirs(), true, &self.pool_listing)
        else {
            return Ok(None);
        };
        self.claim_running(entry, &image, opts).map(Some)
    }

    /// Finish the claim of a pool entry that runs its shell already (its
    /// directory renamed to `containers/<id>`): its config, its limits,
    /// and nothing to start. Its supervisor follows the rename (see
    /// `process::pooled`). Call with the state lock held.
    pub(super) fn claim_running(
        &self,
        entry: pool::PoolEntry,
        image: &Image,
        opts: &CreateOptions,
    ) -> Result<Started> {
        failpoint::hit("create.claimed");
        let dir = self.state.container(&entry.id);
        let config = container_config(
            &entry.id,
            opts,
            image,
            entry.cgroup.clone(),
            entry.id_map,
            None,
        );
        let made = (|| -> Result<()> {
            pool::write_claimed_config(&dir, &config)?;
            failpoint::hit("create.config_written");
            // An entry made with the limits asked for has none to set (the
            // RW layer's size is checked by `resize`).
            if opts.limits != entry.limits {
                Cgroup::open(&config.cgroup).set_limits(&opts.limits)?;
            }
            rootfs::rw::resize(&dir, opts.limits.disk_bytes)?;
            failpoint::hit("create.rw_mounted");
            Ok(())
        })();
        if let Err(e) = made {
            pool::kill_supervisor(&entry);
            let _ = Cgroup::open(&entry.cgroup).remove();
            self.discard(&dir);
            return Err(e);
        }
        failpoint::hit("create.started");
        tracing::info!(container = %entry.id, warm = true, running = true, "container started");
        Ok(Started {
            // `pool::take` saw its supervisor alive, under the lock still held.
            info: self.info_knowing(&dir, &config, true),
            supervisor: None,
            cgroup: config.cgroup,
        })
    }

    /// Start warm containers until the pool holds its targets (in the background).
    pub fn refill_pool(&self) {
        self.refill_pool_by(usize::MAX, &|| true);
    }

    /// Whether the pool holds fewer entries (ready or being made) than its targets.
    pub fn pool_short(&self) -> bool {
        pool::count(&self.state, true) < self.shell_pool
            || pool::count(&self.state, false) < self.warm_pool
    }

    /// Start at most `at_most` warm containers towards the pool's targets,
    /// shell entries first, in the background; `keep_going` is asked
    /// before each one.
    pub fn refill_pool_by(&self, at_most: usize, keep_going: &dyn Fn() -> bool) {
        if !self.pool_short() {
            return;
        }
        let image = match self.images.resolve(&self.warm_image) {
            Ok(image) => image,
            Err(e) => {
                tracing::warn!(image = %self.warm_image, error = %e, "no warm pool: its image is missing");
                return;
            }
        };
        let layers: Vec<PathBuf> = image.layer_dirs().into_iter().map(PathBuf::from).collect();
        let shell_opts = CreateOptions {
            limits: self.shell_limits,
            ..shell_options(&self.warm_image)
        };
        let shell_config = |id: &str, cgroup: CgroupRecord, id_map: IdRange| {
            container_config(id, &shell_opts, &image, cgroup, id_map, None)
        };
        let mut children = Vec::new();
        for (target, shell, limits) in [
            (
                self.shell_pool,
                Some(&shell_config as &pool::ShellConfig),
                self.shell_limits,
            ),
            (self.warm_pool, None, Limits::default()),
        ] {
            children.extend(pool::spawn(
                &self.state,
                &pool::Refill {
                    cgroup_parent: self.cgroup_parent.as_deref(),
                    idle: self.warm_idle,
                    layers: &layers,
                    target,
                    at_most: at_most - children.len(),
                    shell,
                    limits,
                    keep_going,
                },
            ));
        }
        pool::reap_in_background(children);
    }

    /// The layers of the warm pool's image, for a claim's refill of parked
    /// entries (shell entries are made by [`Runtime::refill_pool_by`]
    /// only); `None` without parked entries, or when the image cannot be
    /// had (then every start is cold, and the log says why). `resolved`, an image the caller already has, is used when it is
    /// the pool's, instead of reading the store again.
    pub(super) fn warm_layers(&self, resolved: Option<&Image>) -> Option<Vec<PathBuf>> {
        if self.warm_pool == 0 {
            return None;
        }
        let layers = |image: &Image| image.layer_dirs().into_iter().map(PathBuf::from).collect();
        if let Some(image) = resolved.filter(|i| i.name == self.warm_image) {
            return Some(layers(image));
        }
        match self.images.resolve(&self.warm_image) {
            Ok(image) => Some(layers(&image)),
            Err(e) => {
                tracing::warn!(image = %self.warm_image, error = %e, "no warm pool: its image is missing");
                None
            }
        }
    }

    /// Remove every warm container.
    pub fn drain_pool(&self) -> Result<usize> {
        Ok(pool::drain(&self.state)?)
    }

    /// The warm containers waiting to be claimed, or being prepared.
    pub fn pool_entries(&self) -> Vec<pool::PoolEntry> {
        pool::entries(&self.state)
    }

    /// Whether a warm container runs its shell already (else it is parked).
    pub fn pool_entry_runs_shell(&self, entry: &pool::PoolEntry) -> bool {
        pool::is_shell_entry(&self.state, entry)
    }

    /// Whether a warm container is ready to be claimed.
    pub fn pool_entry_ready(&self, entry: &pool::PoolEntry) -> bool {
        pool::is_ready(&self.state, entry)
    }
}
