//! The Glassbox playground page.
