import CEngineSupport
import Foundation

/// Which BLAS kernels run, and whether this CPU can run better ones.
///
/// OpenBLAS's DYNAMIC_ARCH builds (Debian's) pick a kernel family once, when the library loads,
/// from the CPU's model number. A CPU newer than the build gets the generic fallback, "Prescott"
/// (SSE3): Debian 12's OpenBLAS 0.3.21 does not know Emerald Rapids (family 6, model 207), and on
/// that CPU the shipped U-Net ran 3x slower with it (Fashion-MNIST classifier, 1 thread: 0.17
/// images/s on Prescott, 0.50-0.53 on SkylakeX/Cooperlake; results equal to rounding, 9e-6
/// relative on the per-probe errors). On an AMD EPYC (Zen 4, AVX-512 with bfloat16) it loads its
/// Haswell kernels, and Cooperlake's ran the classifier 1.5x faster (2.6 s against 3.9 s for 6
/// images, leader-gap rule, 1 thread); Haswell's kernels also lose batch independence. The family can only be chosen through `OPENBLAS_CORETYPE`
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

    /// How wide a family's kernels are: 0 SSE only (Prescott, OpenBLAS's fallback, and the older
    /// Intel names), 1 AVX, 2 AVX2 + FMA (Haswell; Zen uses Haswell's kernels), 3 AVX-512
    /// (SkylakeX), 4 AVX-512 with bfloat16 (Cooperlake, SapphireRapids). nil for a name this table
    /// does not know (never overridden).
    public static func rank(of family: String) -> Int? {
        switch family.lowercased() {
        case "prescott", "katmai", "coppermine", "northwood", "banias", "yonah", "core2", "penryn",
             "dunnington", "nehalem", "atom", "opteron", "opteron_sse3", "barcelona": return 0
        case "sandybridge", "bulldozer", "piledriver", "steamroller", "excavator": return 1
        case "haswell", "zen": return 2
        case "skylakex": return 3
        case "cooperlake", "sapphirerapids": return 4
        default: return nil
        }
    }

    /// The `OPENBLAS_CORETYPE` to relaunch with: set only when BLAS loaded a family narrower than
    /// the best one the CPU runs (OpenBLAS's Prescott fallback on CPUs newer than the build; its
    /// Haswell kernels on AVX-512 CPUs it does not know, such as Zen 4 under OpenBLAS 0.3.21) and
    /// neither `OPENBLAS_CORETYPE` nor `relaunchMarker` is in `environment`. A family at least as
    /// wide as the best, or one `rank(of:)` does not know, is kept.
    public static func relaunchCoreType(loaded: String, features: CPUFeatures, environment: [String: String]) -> String? {
        guard environment["OPENBLAS_CORETYPE"] == nil, environment[relaunchMarker] == nil,
              let best = bestCoreType(for: features), let have = rank(of: loaded), let want = rank(of: best),
              have < want else { return nil }
        return best
    }

    /// Whether equal-shape products of `family` give a row the same bits wherever it sits among
    /// the rows, which the engine's batch independence needs (docs/engine.md). Measured true for
    /// Prescott, SkylakeX and Cooperlake; false for Haswell's kernels (and so Zen's); false for
    /// any family not measured.
    public static func rowsArePositionIndependent(family: String) -> Bool {
        ["prescott", "skylakex", "cooperlake"].contains(family.lowercased())
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
