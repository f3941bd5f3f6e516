import Benchmarks
import Foundation
import TensorEngine

/// `diffclass bench`: engine kernels and the classifier against PyTorch (`make bench`).
struct BenchCommand: Command {
    let name = "bench"
    let summary = "time engine kernels, then the classifier, against PyTorch"
    let usage = """
    usage: diffclass bench [--json] [--quick] [--no-torch] [--python PATH] [--torch-script PATH] [--min-seconds S]
                           [--only kernels|classifier|cross-image] [--filter TEXT] [classifier options]

    Times engine kernels against PyTorch, then the classifier against tools/reference_classifier.py (the
    public algorithm in PyTorch) on the shipped model, same eps file, stages, batch and threads: images/s,
    speedup, and a check that predictions and per-class mean errors agree (relative 1e-4; exit 1 if not);
    the two sides alternate --rounds times and the speedup is the median of the rounds' ratios.

    classifier options:
      [--images N (4; --quick 2)] [--stages 5:10,1:50] [--batch-size 32] [--model models/fashion-mnist]
      [--reference-script PATH] [--rounds R (3; --quick 1)]
      [--end-to-end] also time the classifier end to end at equal accuracy: ours with the leader-gap rule
        (Z 2.5, 500-timestep grid) against PyTorch's official schedule --stages 5:50,1:500, time per image,
        ours on [--end-to-end-images N (40; --quick 8)] images, PyTorch on --images
      [--cross-image] also time cross-image batching: U-Net calls/s of the leader-gap rule (defaults) one
        image at a time against [--images-in-flight N (8)] in flight, on [--cross-image-images N (32; --quick 8)]
        images, --batch-size pairs per call; the classifications must be identical (exit 1 if not)
    """
    let valuedFlags: Set<String> = ["python", "torch-script", "min-seconds", "only", "filter", "images", "batch-size", "stages", "rounds",
                                    "model", "reference-script", "end-to-end-images", "images-in-flight", "cross-image-images"]
    let switches: Set<String> = ["json", "quick", "no-torch", "end-to-end", "cross-image"]

    func run(_ args: inout Arguments) throws -> Int32 {
        let json = args.flag("json"), quick = args.flag("quick"), noTorch = args.flag("no-torch")
        let python = args.string("python") ?? "python3"
        let script = args.string("torch-script") ?? "tools/bench_torch.py"
        let minSeconds = try args.double("min-seconds", range: 0...600) ?? (quick ? 0.2 : 0.5)
        let only = args.string("only")
        let filter = args.string("filter")
        guard only == nil || only == "kernels" || only == "classifier" || only == "cross-image" else {
            throw UsageError("--only: '\(only!)' is not kernels, classifier or cross-image")
        }
        var cl = ClassifierBenchmarkSettings()
        cl.images = try args.int("images", range: 1...10_000) ?? (quick ? 2 : cl.images)
        cl.batchSize = try args.int("batch-size", range: 1...100_000) ?? cl.batchSize
        cl.stages = args.string("stages") ?? cl.stages
        cl.rounds = try args.int("rounds", range: 1...100) ?? (quick ? 1 : cl.rounds)
        cl.model = args.string("model") ?? cl.model
        cl.referenceScript = args.string("reference-script") ?? cl.referenceScript
        cl.python = python
        cl.runTorch = !noTorch
        cl.endToEnd = args.flag("end-to-end")
        cl.endToEndImages = try args.int("end-to-end-images", range: 1...10_000) ?? (quick ? 8 : cl.endToEndImages)
        cl.crossImage = args.flag("cross-image") || only == "cross-image"
        cl.imagesInFlight = try args.int("images-in-flight", range: 1...4096) ?? cl.imagesInFlight
        cl.crossImageImages = try args.int("cross-image-images", range: 1...10_000) ?? (quick ? 8 : cl.crossImageImages)
        guard !cl.crossImage || only != "kernels" else { throw UsageError("--cross-image is a classifier case; drop --only kernels") }
        guard !cl.endToEnd || only != "kernels" else { throw UsageError("--end-to-end is a classifier case; drop --only kernels") }
        try args.finish(command: "bench")
        let log: (String) -> Void = { line in
            if !json { print(line); fflush(stdout) } else { FileHandle.standardError.write(Data((line + "\n").utf8)) }
        }
        log("diffclass bench: \(threadCount())")
        var cases = only == "classifier" || only == "cross-image" ? [] : EngineBenchmarks.cases(quick: quick) + ModelBenchmarks.cases(quick: quick)
        if let filter {
            cases = cases.filter { $0.name.contains(filter) }
            guard !cases.isEmpty || only != "kernels" else { throw UsageError("--filter: no benchmark case name contains '\(filter)'") }
        }
        var report = BenchmarkRunner.run(cases, torchScript: noTorch || cases.isEmpty ? nil : script,
                                         python: python, minSeconds: minSeconds, log: log)
        if only != "kernels" {
            if only != "cross-image" { report.classifier = try ClassifierBenchmark.run(cl, log: log) }
            if cl.endToEnd { report.classifierEndToEnd = try ClassifierBenchmark.runEndToEnd(cl, log: log) }
            if cl.crossImage { report.classifierCrossImage = try ClassifierBenchmark.runCrossImage(cl, log: log) }
            report.peakResidentBytes = MemoryStatistics.peakResidentBytes
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print("")
            print(BenchmarkRunner.table(report))
        }
        // A classifier that disagrees with the reference is a bug, not a timing: fail.
        return report.classifier?.matches == false || report.classifierCrossImage?.identical == false ? 1 : 0
    }
}
