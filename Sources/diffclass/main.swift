import Foundation
import TensorEngine

// OpenBLAS picks its kernels when it loads; on a CPU it does not know it falls back to generic
// ones, 3x slower here. Relaunch once with the right family (docs/engine.md, "BLAS").
BLASCore.relaunchWithBetterKernelsIfNeeded()

// A write beyond a file-size limit (`ulimit -f`) would kill the process with SIGXFSZ; ignored, the
// write fails with EFBIG instead and the run folder's error names the file (the finished lines are
// kept and the run resumes once the limit or the disk allows).
signal(SIGXFSZ, SIG_IGN)

/// The commands, in the order `diffclass help` lists them.
let tool = CommandLineTool(commands: [
    BenchCommand(), TrainCommand(), SampleCommand(), LossCommand(), EvalCommand(), ReplayCommand(), ClassifyCommand(),
    ZeroShotCommand(), BenchSDCommand(), CalibrateCommand(), RobustCommand(), MergeCommand(), ReportCommand(), AnalyzeCommand(),
    SelfCheckCommand(), SubmitCommand(), StatusCommand(), ExportCommand(),
])
exit(tool.main(Array(CommandLine.arguments.dropFirst())))
