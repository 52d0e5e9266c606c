//! Files only the gateway's user may read: the audit trail, private keys.

use std::io::Write;
use std::path::Path;

/// Creates `dir` (and any missing parents, with the default mode) and makes `dir` itself
/// owner-only (0700 on Unix), created so from the start and set again if it existed.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    if let Err(e) = builder.create(dir)
        && e.kind() != std::io::ErrorKind::AlreadyExists
    {
        return Err(e);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Opens `path` for writing, owner-only (0600 on Unix) from its creation on; a file left
/// from before is set to 0600 too, since `open` keeps an existing file's mode.
pub fn open_private(options: &mut std::fs::OpenOptions, path: &Path) -> std::io::Result<std::fs::File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Writes `data` to `path` (replacing it), owner-only, and syncs it.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut file = open_private(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        path,
    )?;
    file.write_all(data)?;
    file.sync_all()
}
