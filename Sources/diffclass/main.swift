import Benchmarks
import Foundation
import TensorEngine

let usage = """
usage: diffclass <command> [options]

commands:
  bench      time engine kernels against PyTorch   [--json] [--quick] [--no-torch]
             [--python PATH] [--torch-script PATH] [--min-seconds S] [--only kernels|classifier] [--filter TEXT]
             then the classifier against tools/reference_classifier.py (the public algorithm in PyTorch) on
             the shipped model, same eps file, stages, batch and threads: images/s, speedup, and a check that
             predictions and per-class mean errors agree (relative 1e-4; exit 1 if not); the two sides
             alternate --rounds times and the speedup is the median of the rounds' ratios
             [--images N (4; --quick 2)] [--stages 5:10,1:50] [--batch-size 32] [--model models/fashion-mnist]
             [--reference-script PATH] [--rounds R (3; --quick 1)]
             [--end-to-end] also time the classifier end to end at equal accuracy: ours with the leader-gap
             rule (Z 2.5, 500-timestep grid) against PyTorch's official schedule --stages 5:50,1:500, time
             per image, ours on [--end-to-end-images N (40; --quick 8)] images, PyTorch on --images
  train      train a class-conditional diffusion U-Net
             --dataset fashion-mnist | --data DIR, --out DIR, [--steps N] [--batch-size N] [--lr X]
             [--warmup N] [--ema-decay X] [--label-dropout P] [--grad-clip X] [--weight-decay X]
             [--checkpoint-every N] [--seed S] [--config config.json] [--schedule linear|scaled_linear|
             squaredcos_cap_v2] [--prediction epsilon|v_prediction|sample] [--limit N] [--resume]
             [--lr-schedule constant|cosine] (cosine: from --lr to 0 at --steps, after warm-up)
             [--init-from MODEL_DIR] (start from a diffusers folder's weights, model and EMA; fresh optimizer)
  sample     draw samples from a class-conditional model into a PNG grid
             --model DIR --out FILE.png [--class K|all] [--n N] [--steps N] [--sampler ddim|ddpm]
             [--guidance W] [--seed S] [--ddim-eps clipped|model] (DDIM: eps recomputed from the clipped
             x0, the default, as diffusers' use_clipped_model_output=True; model: the network's eps, diffusers'
             default, which degrades with more steps when x0 is clipped often, e.g. under guidance)
  loss       held-out denoising loss of a model   --model DIR --dataset fashion-mnist | --data DIR
             [--split test|train] [--limit N] [--seed S]
  eval       classify a dataset split with a class-conditional diffusion model (Li et al. 2023)
             --model DIR, --dataset fashion-mnist | --data DIR, --out RUN, [--split test|train] [--limit N]
             [--shard I/N] [--seed S] [--batch-size N] [--loss l2|l1|huber] [--weighting uniform|exp|exp:K|elbo]
             [--tau X | --calibration CAL.json] [--noise FILE] [--t-range A:B]
             [--noise-by probe|timestep] (eps numbered by probe order, the public code's, or by timestep:
             then every strategy on a grid sees the same eps at each t and can be replayed)
             [--save-errors] (each results line also holds every per-probe error, for 'diffclass replay')
             [--reuse SRC] (with --noise-by timestep: look up the (class, t) errors SRC recorded with
             --save-errors for the same images and seed; the U-Net runs only for the rest)
             timesteps: --stages KEEP:N,... (official adaptive schedule; default 5:50,1:500)
                      | --n-timesteps N [--timesteps grid|grid:B|uniform|stratified] | --timesteps T1,T2,...
                        (grid:B: the N-point stage sub-grid of the B-point grid, e.g. grid:500 with N = 50 is
                        stage one of --stages 5:50,1:500; the t-test and leader-gap rules shuffle it per image)
                      | --ttest [--max-scores N] [--min-scores N] [--p-value P] [--test-every N] [--max-probes N]
                        [--timesteps ...]
                      | --leader-gap [--gap Z (2)] [--max-scores N (50)] [--min-scores N (5)] [--max-probes N]
                        (ours: drop a class once its gap to the leader is Z pooled standard errors)
             writes RUN/settings.json, RUN/results.jsonl (one line per image), RUN/summary.json;
             rerunning with the same settings resumes
  replay     run a strategy over the per-probe errors of a recorded run, with no U-Net calls
             --run SRC (made by eval --save-errors --noise-by timestep) --out RUN [method flags as eval,
             on the recorded timesteps] (e.g. --leader-gap); exact: equals the online eval
             with the same flags and --noise-by timestep
  classify   label PNG/JPEG files (resized to the model's size)   --model DIR IMAGE... [--json]
             [--labels a,b,c] [--top K] [timestep, --loss, --weighting, --tau | --calibration, --seed flags as eval]
             --json: one object per image (path, prediction, class_name, probabilities, mean_errors, calls)
  zeroshot   zero-shot classification with a Stable Diffusion pipeline folder (diffusers layout)
             --model SD_DIR --labels a,b,c | --labels-file FILE [--template "a photo of a {}."]
             [--image-size 512] [--top K] [--json] [--weights-dtype fp32|fp16|bf16]
             [method flags as eval; --batch-size default 8] IMAGE...
             images: PIL bicubic resize + centre crop, [-1, 1], VAE posterior mean * scaling factor;
             --json adds per class the timesteps scored and the error at each;
             --weights-dtype fp16|bf16 keeps Linear/Conv2d/Embedding weights as 16-bit (half the memory;
             computed in Float32; F16 checkpoints give the same results as fp32)
             (eval --model SD_DIR --data IMAGE_FOLDER [--labels ...] [--template T] [--image-size N]
             [--weights-dtype D] runs a folder dataset through the same path into a resumable run folder)
  bench-sd   U-Net calls per second of a random-weight UNet2DConditionModel (allocates its weights,
             3.5 GB for SD 2.0-base)   --config unet/config.json [--batch N] [--latent 64] [--calls N] [--no-warmup]
             [--weights-dtype fp32|fp16|bf16]; or --pipeline DIR (text_encoder/, unet/, vae/ configs, e.g.
             Tests/StableDiffusionTests/Fixtures/configs/sd2base) [--prompts 2] [--pairs 2] [--image-size 512]
             [--weights-dtype D]: one random-weight zero-shot classification, seconds and peak RSS
  calibrate  fit the posterior temperature tau (p = softmax(-tau * mean error)) by NLL on an eval run
             --run RUN --out CAL.json   (run eval on held-out images first, e.g. --split train --limit 1000)
             writes tau, NLL and ECE (15 bins) before (tau = 1) and after
  robust     robust accuracy of the diffusion classifier (or RDC with --lm) under attacks, AutoAttack-style
             --model DIR, --dataset fashion-mnist | --data DIR, --eps 8/255, --out RUN, [--split test|train]
             [--limit N] [--shard I/N] [--norm linf|l2] [--attacks apgd-ce,apgd-t,apgd-dlr,pgd,square (default apgd-ce,apgd-t)]
             [--iterations N (100)] [--square-queries N (5000)] [--eot N (1)] [--n-timesteps T (10)]
             [--lm steps=5,eta=8/255,variant=paper|code,grad=exact|bpda,...] [--seed S] [--batch-size N] [--save-adv]
             per image: clean prediction, then the attacks in order until one succeeds; writes RUN/settings.json,
             RUN/results.jsonl (a line per image), RUN/summary.json (clean and robust accuracy ± stderr, breaks
             per attack, U-Net passes and seconds per attacked image), --save-adv: RUN/adv/INDEX.png, adv/pairs.png;
             rerunning with the same settings resumes; --shard I/N: indices i % N == I of the first --limit
  merge      join shard run folders into one   RUN_A RUN_B ... --out RUN
             (eval or robust folders; equal settings.json required; results.jsonl sorted by index, summary.json recomputed)
  submit     run eval or robust as N shards on Slurm (a job array, then a merge job) or Kubernetes (an Indexed
             Job; manifests only, not tested against a cluster): diffclass submit slurm|k8s --shards N [options]
             -- eval|robust ... --out RUN; merged into RUN (see 'diffclass submit help' and docs/cluster.md)
  status     which shards of a submitted run are complete, and the command that resubmits the rest
             RUN [--no-queue] [--shards N --images M]; exit 0 when every shard is complete, 1 if not
  report     write a self-contained HTML report (inline SVG) of a run folder   RUN [--compare RUN2,RUN3] [--out FILE]
             accuracy ± stderr, confusion matrix, per-class accuracy, reliability diagram and ECE, accuracy
             against U-Net calls (one point per run; --compare adds runs), analysis.json charts if present;
             default RUN/report.html
  analyze    the paper's timestep findings on a model   --model DIR, --dataset fashion-mnist | --data DIR,
             --out RUN, [--limit N (50)] [--seed S] [--split test|train] [--points N (20)] [--counts 1,2,5,10,20,50]
             [--batch-size N]; accuracy from one timestep against t, and against the number of timesteps
             with shared vs independent noise; writes RUN/analysis.json (then run diffclass report RUN)
  selfcheck  run the engine's numerical self-check
  help       show this text

global options:
  --threads N   threads for kernels and BLAS (default: DIFFCLASS_THREADS or all cores)
"""

func runBench(_ args: inout Arguments) throws -> Int32 {
    let json = args.flag("json"), quick = args.flag("quick"), noTorch = args.flag("no-torch")
    let python = args.string("python") ?? "python3"
    let script = args.string("torch-script") ?? "tools/bench_torch.py"
    let minSeconds = try args.double("min-seconds", range: 0...600) ?? (quick ? 0.2 : 0.5)
    let only = args.string("only")
    let filter = args.string("filter")
    guard only == nil || only == "kernels" || only == "classifier" else {
        throw UsageError("--only: '\(only!)' is not kernels or classifier")
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
    guard !cl.endToEnd || only != "kernels" else { throw UsageError("--end-to-end is a classifier case; drop --only kernels") }
    try args.finish(command: "bench")
    let log: (String) -> Void = { line in
        if !json { print(line); fflush(stdout) } else { FileHandle.standardError.write(Data((line + "\n").utf8)) }
    }
    log("diffclass bench: \(Engine.threads) threads")
    var cases = only == "classifier" ? [] : EngineBenchmarks.cases(quick: quick) + ModelBenchmarks.cases(quick: quick)
    if let filter {
        cases = cases.filter { $0.name.contains(filter) }
        guard !cases.isEmpty || only != "kernels" else { throw UsageError("--filter: no benchmark case name contains '\(filter)'") }
    }
    var report = BenchmarkRunner.run(cases, torchScript: noTorch || cases.isEmpty ? nil : script,
                                     python: python, minSeconds: minSeconds, log: log)
    if only != "kernels" {
        report.classifier = try ClassifierBenchmark.run(cl, log: log)
        if cl.endToEnd { report.classifierEndToEnd = try ClassifierBenchmark.runEndToEnd(cl, log: log) }
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
    return report.classifier?.matches == false ? 1 : 0
}

func main() -> Int32 {
    // OpenBLAS picks its kernels when it loads; on a CPU it does not know it falls back to
    // generic ones, 3x slower here. Relaunch once with the right family (docs/engine.md, "BLAS").
    BLASCore.relaunchWithBetterKernelsIfNeeded()
    var raw = Array(CommandLine.arguments.dropFirst())
    guard let command = raw.first else { print(usage); return 2 }
    raw.removeFirst()
    do {
        if command == "submit" { return try runSubmit(raw) }
        var args = try Arguments(raw, valued: ["shards", "reuse", "threads", "python", "torch-script", "min-seconds", "filter", "rounds", "out", "dataset", "data", "steps",
                                               "batch-size", "lr", "warmup", "weight-decay", "ema-decay", "grad-clip",
                                               "label-dropout", "checkpoint-every", "seed", "config", "schedule",
                                               "prediction", "limit", "model", "class", "n", "sampler", "guidance", "split",
                                               "shard", "stages", "n-timesteps", "timesteps", "t-range", "loss", "weighting",
                                               "tau", "noise", "min-scores", "max-scores", "p-value", "test-every",
                                               "run", "calibration", "labels", "top", "compare", "points", "counts",
                                               "norm", "eps", "attacks", "iterations", "square-queries", "eot", "lm",
                                               "labels-file", "template", "image-size", "batch", "latent", "calls", "noise-by", "gap",
                                               "max-probes", "weights-dtype", "pipeline", "prompts", "pairs", "only", "images", "end-to-end-images",
                                               "reference-script", "ddim-eps", "lr-schedule", "init-from"])
        if let threads = try args.int("threads", range: 1...4096) { Engine.threads = threads }
        Engine.initialize()
        switch command {
        case "bench": return try runBench(&args)
        case "train": try runTrain(&args)
        case "sample": try runSample(&args)
        case "loss": try runLoss(&args)
        case "eval": try runEval(&args)
        case "robust": try runRobust(&args)
        case "merge": try runMerge(&args)
        case "status": return try runStatus(&args)
        case "replay": try runReplay(&args)
        case "calibrate": try runCalibrate(&args)
        case "report": try runReport(&args)
        case "analyze": try runAnalyze(&args)
        case "classify": return try runClassify(&args)
        case "zeroshot": return try runZeroShot(&args)
        case "bench-sd": try runBenchSD(&args)
        case "selfcheck":
            try args.finish(command: "selfcheck")
            let best = BLASCore.bestCoreType(for: BLASCore.cpuFeatures)
            print("BLAS: \(Engine.blasDescription); kernels: \(BLASCore.loaded)" + (best.map { ", best for this CPU: \($0)" } ?? ""))
            let report = SelfCheck.run()
            print(report.text)
            return report.passed ? 0 : 1
        case "help", "--help", "-h": print(usage)
        default: throw UsageError("unknown command '\(command)' (see 'diffclass help')")
        }
        return 0
    } catch {
        FileHandle.standardError.write(Data("diffclass: \(cliMessage(error))\n".utf8))
        return 2
    }
}

exit(main())
