//! What a local avatar file may be, and reading one: a regular file of at
//! most [`AVATAR_MAX`] that is an image by its content (PNG, JPEG, GIF or
//! WebP, told by its first bytes, and uploaded with that content type), and
//! none of the run's own secret files (the shared secret, the admin token,
//! the password file, the config files, the results file, MAS's client
//! secret). Anything else is refused before anything is uploaded, so no
//! input can publish a file as media.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The largest avatar file read.
pub const AVATAR_MAX: u64 = 16 << 20;

/// The media types an avatar may have.
pub const TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/gif", "image/webp"];

/// An avatar file, read and checked.
pub struct Image {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

/// Why a file is not an avatar.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("cannot read the avatar file {0}: {1}")]
    Unreadable(String, String),
    #[error("the avatar {0} is not a regular file")]
    NotRegular(String),
    #[error("the avatar file {0} is empty")]
    Empty(String),
    #[error("the avatar file {0} is larger than {max} MiB", max = AVATAR_MAX >> 20)]
    TooLarge(String),
    #[error("the avatar file {0} is one of this run's secret files; it is never uploaded")]
    Secret(String),
    #[error(
        "the avatar file {0} is not a PNG, JPEG, GIF or WebP image by its content; it is not uploaded"
    )]
    NotImage(String),
}

/// The device and inode of a file, to tell it again behind another name
/// or a link.
pub fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// The media type of an image by its first bytes, when it is one of
/// [`TYPES`].
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let kind = infer::get(bytes)?;
    TYPES.iter().copied().find(|t| *t == kind.mime_type())
}

/// Checks the file without reading more than its first bytes.
pub fn check(path: &Path, secret_files: &[(u64, u64)]) -> Result<&'static str, Refused> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path)
        .map_err(|e| Refused::Unreadable(shown.clone(), crate::files::io_cause(&e)))?;
    if !meta.is_file() {
        return Err(Refused::NotRegular(shown));
    }
    if secret_files.contains(&(meta.dev(), meta.ino())) {
        return Err(Refused::Secret(shown));
    }
    // Files of /proc and /sys say they are empty, and are refused so.
    if meta.len() == 0 {
        return Err(Refused::Empty(shown));
    }
    if meta.len() > AVATAR_MAX {
        return Err(Refused::TooLarge(shown));
    }
    let mut head = [0u8; 64];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(path)
            .map_err(|e| Refused::Unreadable(shown.clone(), crate::files::io_cause(&e)))?;
        f.read(&mut head)
            .map_err(|e| Refused::Unreadable(shown.clone(), crate::files::io_cause(&e)))?
    };
    sniff(&head[..n]).ok_or(Refused::NotImage(shown))
}

/// Reads the file, checked as [`check`] does, the bytes read judged again.
pub fn read(path: &Path, secret_files: &[(u64, u64)]) -> Result<Image, Refused> {
    let shown = path.display().to_string();
    check(path, secret_files)?;
    let bytes = crate::files::read_regular(path, AVATAR_MAX).map_err(|e| match e {
        crate::files::ReadError::TooLarge(_) => Refused::TooLarge(shown.clone()),
        e => Refused::Unreadable(shown.clone(), e.to_string()),
    })?;
    let content_type = sniff(&bytes).ok_or(Refused::NotImage(shown))?;
    Ok(Image {
        bytes,
        content_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_images_by_content_and_never_a_secret_file() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a.png");
        std::fs::write(
            &png,
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0",
        )
        .unwrap();
        assert_eq!(check(&png, &[]).unwrap(), "image/png");
        // A secret named as the avatar, directly or through a link.
        let link = dir.path().join("link.png");
        std::os::unix::fs::symlink(&png, &link).unwrap();
        let me = identity(&png).unwrap();
        assert!(matches!(check(&link, &[me]), Err(Refused::Secret(_))));
        let token = dir.path().join("token.png");
        std::fs::write(&token, "syt_abc_def\n").unwrap();
        assert!(matches!(check(&token, &[]), Err(Refused::NotImage(_))));
        assert!(matches!(
            check(dir.path(), &[]),
            Err(Refused::NotRegular(_))
        ));
        assert!(matches!(
            check(Path::new("/proc/self/environ"), &[]),
            Err(Refused::Empty(_))
        ));
        let empty = dir.path().join("empty.gif");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(check(&empty, &[]), Err(Refused::Empty(_))));
    }
}
