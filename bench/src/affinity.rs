//! Pinning the server and the clients to different cores (sched_setaffinity), when there are two
//! or more, so a client's figures are not a fight with the server for the same core.

use std::process::Command;

/// The CPUs this process may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity only writes the set it is given.
    #[allow(unsafe_code)]
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|cpu| libc::CPU_ISSET(*cpu, &set))
            .collect()
    }
}

/// Makes `command`'s process run on `cpu` only, from before it execs (so every thread it starts
/// inherits the mask).
pub fn pin_command(command: &mut Command, cpu: usize) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the hook only calls sched_setaffinity, which is async-signal-safe, on a set built
    // on its own stack.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            // Failing to pin is not fatal: the figures are then unpinned, as the report says.
            let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            Ok(())
        });
    }
}
