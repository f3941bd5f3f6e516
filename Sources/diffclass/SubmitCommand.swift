import Cluster
import Datasets
import Foundation

/// `diffclass submit`: an eval or robust run as shards on a cluster, then their merge.
struct SubmitCommand: RawArgumentsCommand {
    let name = "submit"
    let summary = "run eval or robust as N shards on Slurm (a job array, then a merge job) or Kubernetes (an Indexed Job)"
    var usage: String { submitUsage }
    func run(raw: [String]) throws -> Int32 { try runSubmit(raw) }
}

let submitUsage = """
usage: diffclass submit slurm --shards N [options] -- eval|robust ... --out RUN
       diffclass submit k8s --shards N --image IMAGE [options] -- eval|robust ... --out RUN

Runs an eval or robust command as N shards (shard I takes images I, I + N, ... of the first
--limit) on a cluster, each resuming from its own RUN/shards/I, then merges them into RUN itself
(settings.json, results.jsonl, summary.json as one unsharded run would write, and report.html).
RUN/shards/plan.json records the plan; 'diffclass status RUN' says which shards are complete.

slurm: writes RUN/slurm/shard.sh (#SBATCH --array=0-(N-1); task I runs --shard I/N --threads
  $SLURM_CPUS_PER_TASK --out RUN/shards/I; --requeue, logs RUN/slurm/logs/JOB_TASK.out) and
  RUN/slurm/merge.sh (checks every shard is complete, diffclass merge into RUN, diffclass report),
  then sbatch --parsable shard.sh and sbatch --dependency=afterok:ARRAY merge.sh.
  --partition P  --time T (per task)  --merge-time T  --cpus-per-task C  --mem M  --job-name NAME
  --sbatch-line "--qos=low" (an extra #SBATCH line for both scripts; repeatable)
  --diffclass PATH (the binary the nodes run; default: this one)
  --dry-run (print the scripts and the sbatch commands; write and submit nothing)
k8s: writes RUN/k8s/shards.yaml (an Indexed Job: completionMode Indexed, completions N, pod I runs
  --shard $(JOB_COMPLETION_INDEX)/N with threads = its CPU limit) and RUN/k8s/merge.yaml (the merge
  as a Job), and prints the kubectl commands; it never contacts a cluster, and these manifests are
  NOT tested against a Kubernetes cluster (only their text is tested).
  --image IMAGE (with diffclass in it)  --namespace NS  --parallelism P  --cpu 4  --memory 8Gi
  --volume CLAIM:/mount/path (a PersistentVolumeClaim; repeatable)  --working-dir DIR
  --backoff-limit N (6)  --service-account NAME  --job-name NAME  --diffclass PATH (default: diffclass)
  --dry-run (print the manifests instead of writing them)
both: --shards N (required)  --images N (the images the run covers, when the data is not readable
  here; default: counted from the command's --dataset/--data/--split and --limit)
the command after --: every flag of eval or robust except --shard and --threads (submit sets them)
"""

/// `diffclass submit slurm|k8s [options] -- eval|robust ... --out RUN` (see `submitUsage`). Takes
/// the raw words: `--sbatch-line` and `--volume` repeat, which `Arguments` refuses.
func runSubmit(_ raw: [String]) throws -> Int32 {
    guard let scheduler = raw.first, !scheduler.hasPrefix("-") || ["--help", "-h"].contains(scheduler) else {
        throw UsageError("submit needs a scheduler: diffclass submit slurm|k8s [options] -- eval ... --out RUN (see 'diffclass submit help')")
    }
    if ["help", "--help", "-h"].contains(scheduler) || raw.prefix(while: { $0 != "--" }).contains(where: { $0 == "--help" || $0 == "-h" }) {
        print(submitUsage)
        return 0
    }
    guard scheduler == "slurm" || scheduler == "k8s" else { throw UsageError("submit: unknown scheduler '\(scheduler)' (slurm or k8s)") }
    guard let dashes = raw.firstIndex(of: "--") else {
        throw UsageError("submit \(scheduler) needs the command to shard after --: diffclass submit \(scheduler) --shards N -- eval ... --out RUN")
    }
    var own = Array(raw[1..<dashes])
    let inner = Array(raw[(dashes + 1)...])
    let repeated = try takeRepeated(&own, names: scheduler == "slurm" ? ["sbatch-line"] : ["volume"])
    var args = try Arguments(own, valued: ["shards", "images", "partition", "time", "merge-time", "cpus-per-task", "mem", "job-name",
                                           "diffclass", "image", "namespace", "parallelism", "cpu", "memory", "working-dir",
                                           "backoff-limit", "service-account"])
    guard let shards = try args.int("shards", range: 1...1_000_000) else { throw UsageError("submit \(scheduler) needs --shards N") }
    let imagesFlag = try args.int("images", range: 1...Int.max)
    let jobName = args.string("job-name")
    let diffclassFlag = args.string("diffclass")
    let dryRun = args.flag("dry-run")
    let command = try ShardedCommand(inner)
    let defaultName = Quoting.jobName("diffclass-\(command.command)-" + URL(fileURLWithPath: command.out).standardizedFileURL.lastPathComponent)

    if scheduler == "slurm" {
        let options = SlurmOptions(partition: args.string("partition"), time: args.string("time"), mergeTime: args.string("merge-time"),
                                   cpusPerTask: try args.int("cpus-per-task", range: 1...4096), mem: args.string("mem"),
                                   jobName: jobName, extraLines: repeated["sbatch-line"] ?? [])
        try args.finish(command: "submit slurm", takesArguments: true)
        guard args.positional.isEmpty else { throw UsageError("submit slurm: unexpected '\(args.positional[0])' before --") }
        try options.validate()
        let diffclass = try diffclassFlag.map { try absoluteExecutable($0) } ?? currentExecutable()
        let images = try imagesFlag.map { min($0, command.limit ?? $0) } ?? countImages(command)
        let run = URL(fileURLWithPath: command.out).standardizedFileURL
        let plan = try ShardPlan(scheduler: "slurm", command: command, run: run.path, shards: shards, images: images,
                                 workingDirectory: FileManager.default.currentDirectoryPath, diffclass: diffclass,
                                 jobName: jobName ?? defaultName)
        let job = try SlurmJob(plan: plan, options: options)
        try plan.checkCompatible(with: job.layout)
        if dryRun {
            print("# \(job.layout.shardScript.path)")
            print(job.shardScript)
            print("# \(job.layout.mergeScript.path)")
            print(job.mergeScript)
            print("# dry run: nothing written or submitted; submit writes the scripts and plan.json, then runs:")
            print(job.submitCommandLine())
            return 0
        }
        try job.write()
        let ids = try job.submit(runner: ProcessCommandRunner())
        print("submitted \(command.command) over \(shards) shards of \(images) images: array job \(ids.array) (\(job.layout.shardScript.path)), "
            + "merge job \(ids.merge) after it; logs in \(job.layout.slurmLogs.path)")
        print("follow it: diffclass status \(Quoting.shell(command.out))")
        return 0
    }

    let volumes = try (repeated["volume"] ?? []).map { try KubernetesOptions.parseVolume($0) }
    guard let image = args.string("image") else { throw UsageError("submit k8s needs --image IMAGE (a container image with diffclass)") }
    let options = KubernetesOptions(image: image, namespace: args.string("namespace"),
                                    parallelism: try args.int("parallelism", range: 1...1_000_000), cpu: args.string("cpu"),
                                    memory: args.string("memory"), volumes: volumes, workingDirectory: args.string("working-dir"),
                                    backoffLimit: try args.int("backoff-limit", range: 0...1_000_000) ?? 6,
                                    serviceAccount: args.string("service-account"))
    try args.finish(command: "submit k8s", takesArguments: true)
    guard args.positional.isEmpty else { throw UsageError("submit k8s: unexpected '\(args.positional[0])' before --") }
    try options.validate()
    let images = try imagesFlag.map { min($0, command.limit ?? $0) } ?? countImages(command)
    let name = (jobName ?? defaultName).lowercased().replacingOccurrences(of: "_", with: "-").replacingOccurrences(of: ".", with: "-")
    let plan = try ShardPlan(scheduler: "k8s", command: command, run: command.out, shards: shards, images: images,
                             workingDirectory: options.workingDirectory, diffclass: diffclassFlag ?? "diffclass",
                             jobName: String(name.prefix(50)).trimmingCharacters(in: CharacterSet(charactersIn: "-")), namespace: options.namespace)
    let job = try KubernetesJob(plan: plan, options: options)
    let layout = ShardedRunLayout(run: URL(fileURLWithPath: command.out))
    try plan.checkCompatible(with: layout)
    if dryRun {
        print("# \(layout.kubernetesShardJob.path)")
        print(job.shardManifest)
        print("# \(layout.kubernetesMergeJob.path)")
        print(job.mergeManifest)
        print("# dry run: nothing written")
        return 0
    }
    try job.write(layout)
    print("wrote \(layout.kubernetesShardJob.path) (Indexed Job \(plan.jobName), \(shards) shards of \(images) images) and \(layout.kubernetesMergeJob.path)")
    print("not tested against a Kubernetes cluster here; run:")
    for line in KubernetesJob.commands(jobName: plan.jobName, namespace: plan.namespace, shardManifest: layout.kubernetesShardJob.path,
                                       mergeManifest: layout.kubernetesMergeJob.path) { print("  " + line) }
    return 0
}

/// Removes every `--NAME VALUE` / `--NAME=VALUE` of `names` from `words` (before Arguments sees
/// them) and returns their values in order.
private func takeRepeated(_ words: inout [String], names: Set<String>) throws -> [String: [String]] {
    var found: [String: [String]] = [:]
    var kept: [String] = []
    var i = 0
    while i < words.count {
        let w = words[i]
        if w.hasPrefix("--") {
            let body = w.dropFirst(2)
            let name = String(body.prefix { $0 != "=" })
            if names.contains(name) {
                if let eq = body.firstIndex(of: "=") {
                    found[name, default: []].append(String(body[body.index(after: eq)...]))
                } else {
                    guard i + 1 < words.count else { throw UsageError("--\(name) needs a value") }
                    found[name, default: []].append(words[i + 1])
                    i += 1
                }
                i += 1
                continue
            }
        }
        kept.append(w)
        i += 1
    }
    words = kept
    return found
}

/// The images a sharded command covers: min(--limit, the split's images), counted from the data
/// flags as the command reads them (an image folder is listed, not decoded).
private func countImages(_ c: ShardedCommand) throws -> Int {
    guard let split = ImageDataset.Split(rawValue: c.split) else { throw UsageError("\(c.command) --split: '\(c.split)' is not train or test") }
    let n: Int
    do {
        if let data = c.data, c.dataset == nil, !isMNISTFormat(data, split: split) {
            n = try ImageFolder.files(URL(fileURLWithPath: data)).files.count
        } else {
            n = try DatasetLocator.load(dataset: c.dataset, data: c.data, split: split).count
        }
    } catch {
        throw UsageError("submit: cannot count the images of the command's data (\(cliMessage(error))); give --images N if the data is not readable here")
    }
    return min(n, c.limit ?? n)
}

private func isMNISTFormat(_ path: String, split: ImageDataset.Split) -> Bool {
    let prefix = split == .train ? "train" : "t10k"
    let url = URL(fileURLWithPath: path)
    return ["\(prefix)-images-idx3-ubyte.gz", "\(prefix)-images-idx3-ubyte"].contains {
        FileManager.default.fileExists(atPath: url.appendingPathComponent($0).path)
    }
}

/// The running binary's absolute path (the default binary for the nodes).
private func currentExecutable() throws -> String {
    if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return path }
    return try absoluteExecutable(CommandLine.arguments[0])
}

private func absoluteExecutable(_ path: String) throws -> String {
    let url = URL(fileURLWithPath: path).standardizedFileURL
    guard FileManager.default.isExecutableFile(atPath: url.path) else { throw UsageError("--diffclass: \(path) is not an executable file") }
    return url.path
}
