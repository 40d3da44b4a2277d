//! The host sysctls the bridge network needs, written straight to /proc/sys.

use berth_core::pod::ports::PodError;

fn write(key: &str, value: &str) -> Result<(), PodError> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    // Skip the write when the value is already right: cheaper, and works on a read-only
    // /proc/sys (containers) once the admin has set it.
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value)
        .map_err(|e| PodError::failed("sysctl", format!("setting {key}={value}: {e}")))
}

/// Pods reach beyond the node only if the node routes for them.
pub(crate) fn enable_forwarding(ipv6: bool) -> Result<(), PodError> {
    write("net.ipv4.ip_forward", "1")?;
    if ipv6 {
        write("net.ipv6.conf.all.forwarding", "1")?;
    }
    Ok(())
}

/// Lets packets DNATed from 127.0.0.1 (a published port used on the node) leave through
/// the bridge; the postrouting masquerade then gives them the bridge's address.
pub(crate) fn route_localnet(bridge: &str) -> Result<(), PodError> {
    // Interface names may contain '.', which /proc/sys spells as '/' in keys: write the
    // path directly instead of going through the dotted key.
    let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(&path, "1")
        .map_err(|e| PodError::failed("sysctl", format!("setting route_localnet on {bridge}: {e}")))
}
