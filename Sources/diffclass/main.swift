import Foundation
import TensorEngine

// OpenBLAS picks its kernels when it loads; on a CPU it does not know it falls back to generic
// ones, 3x slower here. Relaunch once with the right family (docs/engine.md, "BLAS").
BLASCore.relaunchWithBetterKernelsIfNeeded()

/// The commands, in the order `diffclass help` lists them.
let tool = CommandLineTool(commands: [
    BenchCommand(), TrainCommand(), SampleCommand(), LossCommand(), EvalCommand(), ReplayCommand(), ClassifyCommand(),
    ZeroShotCommand(), BenchSDCommand(), CalibrateCommand(), RobustCommand(), MergeCommand(), ReportCommand(), AnalyzeCommand(),
    SelfCheckCommand(), SubmitCommand(), StatusCommand(),
])
exit(tool.main(Array(CommandLine.arguments.dropFirst())))
