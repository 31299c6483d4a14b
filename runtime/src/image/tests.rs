//! Unit tests for names, digests and the ELF check.

use super::*;

#[test]
fn accepts_valid_names() {
    for name in [
        "busybox",
        "a",
        "my-app_1.2",
        "busybox:1.36",
        "x:latest",
        "0abc:v1-rc.2",
    ] {
        assert!(validate_name(name).is_ok(), "{name} should be valid");
    }
    let long = "a".repeat(64);
    assert!(validate_name(&long).is_ok());
    assert!(validate_name(&format!("{long}:{long}")).is_ok());
}

#[test]
fn rejects_invalid_names() {
    let long = "a".repeat(65);
    for name in [
        "",
        ".",
        "..",
        "../etc/passwd",
        "a/b",
        "/abs",
        "Busybox",
        "-x",
        ".hidden",
        "_x",
        "a:",
        ":tag",
        "a:b:c",
        "a:../x",
        "a:.x",
        "a b",
        "a\0b",
        "é",
        long.as_str(),
    ] {
        let err = validate_name(name).expect_err(name);
        assert!(
            err.to_string().starts_with("invalid image name"),
            "message: {err}"
        );
    }
    assert!(validate_name(&format!("a:{long}")).is_err());
}

#[test]
fn latest_tag_is_the_bare_name() {
    assert_eq!(
        normalize_name("busybox:latest").ok().as_deref(),
        Some("busybox")
    );
    assert_eq!(
        normalize_name("busybox:1").ok().as_deref(),
        Some("busybox:1")
    );
}

#[test]
fn digest_hex_is_strict() {
    let hex = "ab".repeat(32);
    assert_eq!(digest_hex(&format!("sha256:{hex}")), Some(hex.as_str()));
    assert_eq!(digest_hex(&format!("sha512:{hex}")), None);
    assert_eq!(digest_hex("sha256:../../etc"), None);
    assert_eq!(digest_hex(&format!("sha256:{}", "AB".repeat(32))), None);
}

#[test]
fn elf_check_tells_static_from_dynamic() {
    assert!(!busybox::is_static_elf(b"#!/bin/sh\n"));
    assert!(!busybox::is_static_elf(&[0x7f, b'E', b'L', b'F']));
    if let Ok(ls) = std::fs::read("/bin/ls") {
        assert!(
            !busybox::is_static_elf(&ls),
            "/bin/ls is dynamically linked"
        );
    }
    if let Ok(bb) = std::fs::read(HOST_BUSYBOX) {
        assert!(busybox::is_static_elf(&bb), "busybox-static is static");
    }
}

#[test]
fn uid_shift_is_refused_until_implemented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(dir.path()).expect("open");
    let opts = UnpackOptions {
        id_shift: Some(IdShift {
            host_base: 100_000,
            count: 65_536,
        }),
    };
    let err = store
        .add_layer_from_tar_with(std::io::empty(), &opts)
        .expect_err("not implemented");
    assert!(matches!(err, ImageError::Unsupported { .. }), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("layers/sha256"))
            .expect("layers")
            .count(),
        0
    );
}
