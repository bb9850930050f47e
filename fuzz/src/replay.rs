//! Running saved inputs through a target without libFuzzer (stable builds of the targets).

use std::path::Path;
use std::{fs, io};

use crate::Target;

/// Runs `target` over every file in `dir` (not recursive), returning how many ran. A
/// panicking input propagates its panic after naming the file on stderr.
pub fn replay_dir(target: Target, dir: &Path) -> io::Result<usize> {
    let mut files: Vec<_> = fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<io::Result<_>>()?;
    files.sort();
    let mut ran = 0;
    for file in files.iter().filter(|f| f.is_file()) {
        replay_file(target, file)?;
        ran += 1;
    }
    Ok(ran)
}

/// Runs `target` over one file, or over every file in it if it is a directory.
pub fn replay_file(target: Target, path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return replay_dir(target, path).map(drop);
    }
    let data = fs::read(path)?;
    let outcome = std::panic::catch_unwind(|| target(&data));
    if let Err(panic) = outcome {
        eprintln!("input {} breaks an invariant", path.display());
        std::panic::resume_unwind(panic);
    }
    Ok(())
}

/// `main` of a target binary built without `--cfg fuzzing`: replays the files and
/// directories named on the command line.
pub fn replay_main(name: &str, target: Target) {
    let paths: Vec<String> = std::env::args().skip(1).collect();
    if paths.is_empty() {
        eprintln!("usage: {name} <file or directory>...  (replays inputs; fuzz with `cargo +nightly fuzz run {name}`)");
        std::process::exit(2);
    }
    for path in &paths {
        if let Err(e) = replay_file(target, Path::new(path)) {
            eprintln!("{name}: cannot read {path}: {e}");
            std::process::exit(2);
        }
    }
}
