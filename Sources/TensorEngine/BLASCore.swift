import CEngineSupport
import Foundation

/// Which BLAS kernels run, and whether this CPU can run better ones.
///
/// OpenBLAS's DYNAMIC_ARCH builds (Debian's) pick a kernel family once, when the library loads,
/// from the CPU's model number. A CPU newer than the build gets the generic fallback, "Prescott"
/// (SSE3): Debian 12's OpenBLAS 0.3.21 does not know Emerald Rapids (family 6, model 207), and on
/// that CPU the shipped U-Net ran 3x slower with it (Fashion-MNIST classifier, 1 thread: 0.17
/// images/s on Prescott, 0.50-0.53 on SkylakeX/Cooperlake; results equal to rounding, 9e-6
/// relative on the per-probe errors). The family can only be chosen through `OPENBLAS_CORETYPE`
/// before the library loads, so a program calls `relaunchWithBetterKernelsIfNeeded()` first
/// thing: it re-executes itself once with the variable set. A user's own `OPENBLAS_CORETYPE`
/// (any value) is always kept.
public enum BLASCore {
    /// The kernel family BLAS loaded ("Prescott", "SkylakeX", ...; "Accelerate" on Apple).
    public static var loaded: String { String(cString: ces_blas_core()) }

    /// The x86 features that decide OpenBLAS's kernel family.
    public struct CPUFeatures: OptionSet, Sendable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }
        public static let avx = CPUFeatures(rawValue: Int(CES_CPU_AVX))
        public static let avx2 = CPUFeatures(rawValue: Int(CES_CPU_AVX2))
        public static let fma = CPUFeatures(rawValue: Int(CES_CPU_FMA))
        public static let avx512f = CPUFeatures(rawValue: Int(CES_CPU_AVX512F))
        public static let avx512bw = CPUFeatures(rawValue: Int(CES_CPU_AVX512BW))
        public static let avx512dq = CPUFeatures(rawValue: Int(CES_CPU_AVX512DQ))
        public static let avx512vl = CPUFeatures(rawValue: Int(CES_CPU_AVX512VL))
        public static let avx512cd = CPUFeatures(rawValue: Int(CES_CPU_AVX512CD))
        public static let avx512bf16 = CPUFeatures(rawValue: Int(CES_CPU_AVX512BF16))
        /// What OpenBLAS's SkylakeX kernels use.
        public static let skylakeX: CPUFeatures = [.avx512f, .avx512bw, .avx512dq, .avx512vl, .avx512cd, .avx2, .fma]
    }

    /// This CPU's features (empty off x86).
    public static var cpuFeatures: CPUFeatures { CPUFeatures(rawValue: Int(ces_cpu_features())) }

    /// The best OpenBLAS kernel family a CPU with `features` runs: Cooperlake (SkylakeX plus
    /// bfloat16), SkylakeX (AVX-512), Haswell (AVX2 + FMA), SandyBridge (AVX); nil below that.
    public static func bestCoreType(for features: CPUFeatures) -> String? {
        if features.isSuperset(of: .skylakeX) { return features.contains(.avx512bf16) ? "Cooperlake" : "SkylakeX" }
        if features.isSuperset(of: [.avx2, .fma]) { return "Haswell" }
        if features.contains(.avx) { return "SandyBridge" }
        return nil
    }

    /// The `OPENBLAS_CORETYPE` to relaunch with: set only when BLAS loaded OpenBLAS's fallback
    /// (Prescott), the CPU runs a better family, and neither `OPENBLAS_CORETYPE` nor
    /// `relaunchMarker` is in `environment`. A family OpenBLAS chose itself is never overridden.
    public static func relaunchCoreType(loaded: String, features: CPUFeatures, environment: [String: String]) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil, environment[relaunchMarker] == nil,
              loaded.lowercased() == "prescott" else { return nil }
        return bestCoreType(for: features)
    }

    /// Set in the relaunched process, so that it never relaunches again.
    public static let relaunchMarker = "DIFFCLASS_BLAS_RELAUNCHED"

    /// Re-executes this program (same arguments) with `OPENBLAS_CORETYPE` set when
    /// `relaunchCoreType` says so; returns otherwise, also when the exec fails (the program then
    /// runs on the slower kernels). Linux only. Call before any other work: the process is replaced.
    public static func relaunchWithBetterKernelsIfNeeded() {
        #if os(Linux)
        guard let core = relaunchCoreType(loaded: loaded, features: cpuFeatures,
                                          environment: ProcessInfo.processInfo.environment) else { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv(relaunchMarker, "1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // Only reached when the exec failed: go on with the kernels that are loaded.
        unsetenv("OPENBLAS_CORETYPE")
        #endif
    }
}
