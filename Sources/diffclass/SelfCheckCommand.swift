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
        let report = SelfCheck.run()
        print(report.text)
        return report.passed ? 0 : 1
    }
}
