//! Packaging for the edge (packaging/, docs/deployment.md): the container image's runtime
//! stage, rebuilt as a root filesystem and entered with `unshare` (no container runtime
//! can pull images here), runs the demo as its non-root user and writes into its volume;
//! the systemd unit passes `systemd-analyze verify`; the install script lays out the tree
//! under DESTDIR; the example configuration passes `backplane check`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use backplane_testkit::engine::eventually;
use backplane_testkit::process::{Running, start_gateway};

const BIN: &str = env!("CARGO_BIN_EXE_backplane");

fn packaging(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(name)
}

fn run(command: &mut Command) -> Output {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What the Containerfile's runtime stage (after its last `FROM`) declares.
#[derive(Debug)]
struct Runtime {
    uid: u32,
    gid: u32,
    volume: String,
    workdir: String,
    entrypoint: String,
    cmd: Vec<String>,
    exposed: String,
}

fn exec_form(line: &str) -> Vec<String> {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not an exec-form JSON array: {line}: {e}"))
}

fn runtime_stage() -> Runtime {
    let text = fs::read_to_string(packaging("Containerfile")).unwrap();
    let stage = text
        .rsplit_once("\nFROM ")
        .expect("the Containerfile has no FROM")
        .1;
    let instruction = |name: &str| {
        stage
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("the runtime stage has no {name}"))
            .trim()
            .to_owned()
    };
    let user = instruction("USER");
    let (uid, gid) = user.split_once(':').expect("USER uid:gid, numeric");
    let volumes = exec_form(&instruction("VOLUME"));
    let entrypoint = exec_form(&instruction("ENTRYPOINT"));
    assert_eq!(entrypoint.len(), 1, "ENTRYPOINT is the binary alone");
    Runtime {
        uid: uid
            .parse()
            .expect("a numeric uid: runtimes check it without /etc/passwd"),
        gid: gid.parse().expect("a numeric gid"),
        volume: volumes[0].clone(),
        workdir: instruction("WORKDIR"),
        entrypoint: entrypoint[0].clone(),
        cmd: exec_form(&instruction("CMD")),
        exposed: instruction("EXPOSE"),
    }
}

/// The shared libraries the dynamic loader needs for `bin`, with the loader itself.
fn shared_libraries(bin: &str) -> Vec<PathBuf> {
    let out = run(Command::new("ldd").arg(bin));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| {
            // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
            let path = l.split("=>").last()?.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

fn copy_into(root: &Path, from: &Path, to: &str) {
    let target = root.join(to.trim_start_matches('/'));
    fs::create_dir_all(target.parent().unwrap()).unwrap();
    fs::copy(from, &target).unwrap_or_else(|e| panic!("{} → {}: {e}", from.display(), target.display()));
}

/// The runtime stage's file system: what distroless `cc` brings that the gateway uses
/// (glibc's libraries, /etc/passwd with the user, /tmp) and what the stage adds (the
/// binary, the data directory owned by the user).
fn build_rootfs(root: &Path, image: &Runtime) {
    copy_into(root, Path::new(BIN), &image.entrypoint);
    let libraries = shared_libraries(BIN);
    assert!(!libraries.is_empty(), "the gateway links glibc dynamically");
    for library in libraries {
        copy_into(root, &library, library.to_str().unwrap());
    }
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{0}:{1}:nonroot:/home/nonroot:/sbin/nologin\n",
            image.uid, image.gid
        ),
    )
    .unwrap();
    fs::write(
        root.join("etc/group"),
        format!("root:x:0:\nnonroot:x:{}:\n", image.gid),
    )
    .unwrap();
    for dir in ["tmp", "proc"] {
        fs::create_dir_all(root.join(dir)).unwrap();
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    // Ours outside, the image's user inside (the user namespace maps one to the other).
    let data = root.join(image.volume.trim_start_matches('/'));
    fs::create_dir_all(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o750)).unwrap();
}

/// `unshare` with a user namespace that makes us the image's user: no capabilities
/// outside, as under a container runtime. False when this machine forbids it.
fn user_namespaces_allowed() -> bool {
    Command::new("unshare")
        .args(["--user", "--map-user=65532", "--mount", "--pid", "--fork", "true"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The process `unshare --fork` started: the gateway, PID 1 of its namespace.
fn only_child(pid: u32) -> u32 {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let children: Vec<u32> = children.split_whitespace().map(|c| c.parse().unwrap()).collect();
    assert_eq!(children.len(), 1, "unshare --fork has one child: {children:?}");
    children[0]
}

#[tokio::test]
async fn container_runtime_stage_runs_the_demo_as_its_non_root_user_writing_into_the_volume() {
    let image = runtime_stage();
    assert_eq!(
        image.exposed, "8080",
        "EXPOSE and the default --listen port agree"
    );
    assert_ne!(image.uid, 0, "the image runs as a non-root user");
    assert_eq!(image.workdir, image.volume);
    if !user_namespaces_allowed() {
        eprintln!(
            "SKIPPED: this machine does not allow `unshare --user` (user namespaces), so the image's rootfs cannot be entered"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    build_rootfs(&root, &image);

    // The image's CMD, but on a free port: 8080 may be taken on a shared machine.
    let cmd: Vec<String> = image.cmd.iter().map(|a| a.replace(":8080", ":0")).collect();
    assert!(
        cmd.contains(&"demo".to_owned()),
        "the default command runs the demo: {cmd:?}"
    );
    let (mut gateway, base, _) = start_gateway(
        Command::new("unshare")
            .arg(format!("--map-user={}", image.uid))
            .arg(format!("--map-group={}", image.gid))
            .args(["--mount", "--pid", "--fork", "--kill-child", "--mount-proc"])
            .arg(format!("--root={}", root.display()))
            .arg(format!("--wd={}", image.workdir))
            .arg(&image.entrypoint)
            .args(&cmd),
        0,
    );
    let inside = only_child(gateway.0.id());
    let uid_map = fs::read_to_string(format!("/proc/{inside}/uid_map")).unwrap();
    assert_eq!(
        uid_map.split_whitespace().next(),
        Some(image.uid.to_string().as_str()),
        "runs as the image's user: {uid_map}"
    );

    let response = reqwest::get(format!("{base}/api/v1/health")).await.unwrap();
    assert!(response.status().is_success(), "health: {}", response.status());
    let health: serde_json::Value = response.json().await.unwrap();
    assert!(health.is_object(), "{health}");
    let volume = root.join(image.volume.trim_start_matches('/'));
    let samples = volume.join("samples.jsonl");
    eventually("samples in the volume", Duration::from_secs(60), || {
        samples.metadata().ok().filter(|m| m.len() > 0)
    })
    .await;
    assert!(
        volume.join("history").is_dir(),
        "the historian stores into the volume"
    );

    // `podman stop` sends SIGTERM to PID 1: the gateway stops cleanly.
    run(Command::new("kill").args(["-TERM", &inside.to_string()]));
    let exit = wait(&mut gateway);
    assert!(
        exit.is_some_and(|s| s.success()),
        "did not exit cleanly: {exit:?}"
    );
}

/// Waits up to 30 s (a safety net, not a timing assertion).
fn wait(process: &mut Running) -> Option<std::process::ExitStatus> {
    for _ in 0..600 {
        if let Some(s) = process.0.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// `systemd-analyze verify` on the unit with ExecStart pointing at `bin`; fails on any
/// complaint about the unit (it exits 0 on unknown keys and bad values, only warning).
fn verify_unit(unit: &str, bin: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backplane.service");
    fs::write(&path, unit.replace("/usr/local/bin/backplane", bin)).unwrap();
    let out = run(Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("backplane.service"))
        .collect();
    assert!(complaints.is_empty(), "systemd-analyze verify: {complaints:#?}");
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify_with_its_hardening() {
    if !found("systemd-analyze") {
        eprintln!("SKIPPED: no systemd-analyze on this machine (Debian: systemd)");
        return;
    }
    let unit = fs::read_to_string(packaging("backplane.service")).unwrap();
    verify_unit(&unit, BIN);
    for directive in [
        "User=backplane",
        "StateDirectory=backplane",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/backplane",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=\n",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.contains(directive), "the unit lacks {directive:?}");
    }
}

#[test]
fn systemd_analyze_verify_catches_a_misspelt_directive() {
    if !found("systemd-analyze") {
        eprintln!("SKIPPED: no systemd-analyze on this machine (Debian: systemd)");
        return;
    }
    let unit = fs::read_to_string(packaging("backplane.service"))
        .unwrap()
        .replace("Restart=on-failure", "Restrat=on-failure");
    let verified = std::panic::catch_unwind(|| verify_unit(&unit, BIN));
    assert!(verified.is_err(), "a misspelt key passed");
}

#[test]
fn example_configuration_passes_check() {
    run(Command::new(BIN).arg("check").arg(packaging("backplane.toml")));
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn install_script_stages_binary_unit_and_configuration_under_destdir() {
    let dest = tempfile::tempdir().unwrap();
    let d = dest.path();
    let install = || {
        run(Command::new(packaging("install.sh"))
            .args(["--bin", BIN, "--prefix", "/opt/backplane", "--destdir"])
            .arg(d)
            .env_remove("DESTDIR"));
    };
    install();

    let bin = d.join("opt/backplane/bin/backplane");
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(fs::read(&bin).unwrap(), fs::read(BIN).unwrap());
    let unit = d.join("etc/systemd/system/backplane.service");
    assert_eq!(mode(&unit), 0o644);
    let unit_text = fs::read_to_string(&unit).unwrap();
    assert!(
        unit_text.contains("\nExecStart=/opt/backplane/bin/backplane run /etc/backplane/backplane.toml\n"),
        "ExecStart follows --prefix"
    );
    let left: Vec<&str> = unit_text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("/usr/local"))
        .collect();
    assert!(left.is_empty(), "paths left at /usr/local: {left:?}");
    let config = d.join("etc/backplane/backplane.toml");
    assert_eq!(mode(&d.join("etc/backplane")), 0o750);
    assert_eq!(mode(&config), 0o640, "the configuration may hold secrets");
    assert_eq!(
        fs::read_to_string(&config).unwrap(),
        fs::read_to_string(packaging("backplane.toml")).unwrap()
    );
    if found("systemctl") {
        let wants = d.join("etc/systemd/system/multi-user.target.wants/backplane.service");
        assert_eq!(
            fs::read_link(&wants).unwrap(),
            Path::new("/etc/systemd/system/backplane.service"),
            "enabled"
        );
    }

    // An upgrade keeps the operator's configuration.
    fs::write(&config, "# edited\n").unwrap();
    install();
    assert_eq!(fs::read_to_string(&config).unwrap(), "# edited\n");
}

#[test]
fn install_script_refuses_a_relative_prefix_and_a_missing_binary() {
    let dest = tempfile::tempdir().unwrap();
    for args in [
        ["--bin", BIN, "--prefix", "usr"],
        ["--bin", "/nonexistent/backplane", "--prefix", "/usr"],
    ] {
        let out = Command::new(packaging("install.sh"))
            .args(args)
            .arg("--destdir")
            .arg(dest.path())
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
    }
    assert_eq!(fs::read_dir(dest.path()).unwrap().count(), 0, "nothing installed");
}
