import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The cores this process may actually use: the CPUs in its affinity mask (`taskset`, container
/// cpusets), capped by a cgroup CPU quota (`docker --cpus`, systemd `CPUQuota`) rounded up. The
/// thread pool and the parallel LLVM compile size themselves from this, not from the machine's
/// core count: more threads than cores only adds preemption.
public enum AvailableCores {
    public static let count: Int = {
        var n = affinityCount() ?? ProcessInfo.processInfo.activeProcessorCount
        // The process's own cgroup (v2: the `0::/path` line), else the root of the hierarchy (a container's view).
        let own = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("0::/") }.map { String($0.dropFirst(3)) }
        if let quota = own.flatMap({ cgroupQuota(root: "/sys/fs/cgroup" + $0) }) ?? cgroupQuota() { n = min(n, quota) }
        return max(1, n)
    }()

    /// CPUs in the affinity mask: `Cpus_allowed` of /proc/self/status, what sched_getaffinity
    /// returns (Swift's Glibc module does not export sched_getaffinity: it needs _GNU_SOURCE).
    static func affinityCount(status: String? = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) -> Int? {
        guard let status else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("Cpus_allowed:") {
            let mask = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
            let n = mask.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
            return n > 0 ? n : nil
        }
        return nil
    }

    /// The cgroup CPU limit in whole cores, if one is set (v2 `cpu.max`, v1 `cpu.cfs_quota_us`).
    static func cgroupQuota(root: String = "/sys/fs/cgroup") -> Int? {
        func read(_ path: String) -> String? {
            (try? String(contentsOfFile: (root as NSString).appendingPathComponent(path), encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let max = read("cpu.max") {
            let parts = max.split(separator: " ")
            guard parts.count == 2, let quota = Double(parts[0]), let period = Double(parts[1]), period > 0 else { return nil }
            return Swift.max(1, Int((quota / period).rounded(.up)))
        }
        if let quotaText = read("cpu/cpu.cfs_quota_us") ?? read("cpu,cpuacct/cpu.cfs_quota_us"),
           let quota = Double(quotaText), quota > 0,
           let periodText = read("cpu/cpu.cfs_period_us") ?? read("cpu,cpuacct/cpu.cfs_period_us"),
           let period = Double(periodText), period > 0 {
            return Swift.max(1, Int((quota / period).rounded(.up)))
        }
        return nil
    }
}
