//! Images already read, kept while their record on disk says the same.
//!
//! Every create resolves its image, and a burst of creates from the pool of
//! running shells resolves it while taking turns: reading and parsing the
//! record and then each layer's record every time was most of what a turn
//! spent outside the claim itself.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Image;

/// Image name → the bytes of the record last read for it, and the image
/// they made.
///
/// The record itself is read every time, and compared: the key is what it
/// says, not which file it is or when it changed (an inode can be reused,
/// and a change time can be as coarse as a clock tick). Layers need no
/// check of their own: a layer is immutable, and one is only removed once
/// no image record names it, which changes every record that did.
#[derive(Debug, Default)]
pub(super) struct ImageCache {
    images: Mutex<HashMap<String, (Vec<u8>, Image)>>,
}

impl ImageCache {
    /// The image `name` made from a record that said `record`, if it was.
    pub(super) fn get(&self, name: &str, record: &[u8]) -> Option<Image> {
        let images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        match images.get(name) {
            Some((bytes, image)) if bytes == record => Some(image.clone()),
            _ => None,
        }
    }

    pub(super) fn put(&self, name: &str, record: Vec<u8>, image: &Image) {
        let mut images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        images.insert(name.to_string(), (record, image.clone()));
    }

    /// Drop `name` (its record is gone).
    pub(super) fn forget(&self, name: &str) {
        let mut images = self.images.lock().unwrap_or_else(|p| p.into_inner());
        images.remove(name);
    }
}
