import Foundation
import TensorEngine

/// `diffclass selfcheck`: the engine's numerical self-check.
struct SelfCheckCommand: Command {
    let name = "selfcheck"
    let summary = "run the engine's numerical self-check"
    let usage = """
    usage: diffclass selfcheck

    Prints the BLAS in use and its kernels, then checks the engine's kernels against their plain
    reference versions; exit status 1 when a check fails.
    """
    let valuedFlags: Set<String> = []

    func run(_ args: inout Arguments) throws -> Int32 {
        try args.finish(command: name)
        let best = BLASCore.bestCoreType(for: BLASCore.cpuFeatures)
        print("BLAS: \(Engine.blasDescription); kernels: \(BLASCore.loaded)" + (best.map { ", best for this CPU: \($0)" } ?? ""))
        if let chosen = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], let best,
           let have = BLASCore.rank(of: BLASCore.loaded), let want = BLASCore.rank(of: best), have < want {
            print("note: OPENBLAS_CORETYPE=\(chosen) in the environment keeps narrower kernels than this CPU runs; unset it (or set \(best)) for faster products")
        }
        let report = SelfCheck.run()
        print(report.text)
        return report.passed ? 0 : 1
    }
}
