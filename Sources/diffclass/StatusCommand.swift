import Cluster
import Foundation

/// `diffclass status`: the shards of a submitted run.
struct StatusCommand: Command {
    let name = "status"
    let summary = "which shards of a submitted run are complete, and the command that resubmits the rest"
    let usage = """
    usage: diffclass status RUN [--no-queue] [--shards N --images M]

    Which shards of a run made by 'diffclass submit' are complete, incomplete or missing (from their
    results.jsonl), whether the merge ran, for Slurm which tasks are still queued or running
    (squeue, unless --no-queue), and the command that resubmits only the incomplete shards and the
    merge. --shards/--images check a folder without RUN/shards/plan.json. Exit status 0 when every
    shard is complete, 1 when not.
    """
    let valuedFlags: Set<String> = ["shards", "images"]
    let switches: Set<String> = ["no-queue"]
    func run(_ args: inout Arguments) throws -> Int32 { try runStatus(&args) }
}

/// `diffclass status RUN [--shards N --images M] [--no-queue]`: which shards of a sharded run
/// (made by `diffclass submit`) are complete, incomplete or missing, from their results.jsonl;
/// whether the merge ran; for Slurm, which tasks are still queued or running (`squeue --me`,
/// unless `--no-queue`) and the exact command that resubmits only the incomplete shards and then
/// the merge. `--shards`/`--images` check a folder without RUN/shards/plan.json (the merge step
/// passes them). Exit status 0 when every shard is complete, 1 when not, 2 on errors.
func runStatus(_ args: inout Arguments) throws -> Int32 {
    let shardsFlag = try args.int("shards", range: 1...1_000_000)
    let imagesFlag = try args.int("images", range: 1...Int.max)
    let noQueue = args.flag("no-queue")
    try args.finish(command: "status", takesArguments: true)
    guard args.positional.count == 1 else { throw UsageError("status needs one run folder: diffclass status RUN") }
    let layout = ShardedRunLayout(run: URL(fileURLWithPath: args.positional[0]).standardizedFileURL)
    let plan = FileManager.default.fileExists(atPath: layout.planURL.path) ? try ShardPlan.load(layout.planURL) : nil
    guard let shards = shardsFlag ?? plan?.shards, let images = imagesFlag ?? plan?.images else {
        throw UsageError("\(layout.planURL.path) does not exist (RUN was not made by diffclass submit); give --shards N and --images M to check its shards")
    }
    if let plan, plan.shards != shards || plan.images != images {
        throw UsageError("--shards \(shards) --images \(images): \(layout.planURL.path) says \(plan.shards) shards of \(plan.images) images")
    }
    let status = try ShardedRunStatus.inspect(layout, shards: shards, images: images)
    print("\(layout.run.path): " + (plan.map { "\($0.command.command) over " } ?? "") + "\(shards) shards of \(images) images"
        + (plan.map { " (\($0.scheduler))" } ?? ""))

    guard let plan, !noQueue else {
        status.lines().forEach { print($0) }
        return status.allComplete ? 0 : 1
    }
    if plan.scheduler == "slurm" {
        let job = try SlurmJob(plan: plan, options: SlurmOptions())
        let (entries, problem) = SlurmJob.queue(runner: ProcessCommandRunner())
        let queue = entries.map { SlurmQueue.match($0, job: job) }
        status.lines(queue: queue?.shards ?? [:]).forEach { print($0) }
        for m in queue?.merges ?? [] { print("merge job \(m.jobID): \(m.state)" + (m.reason == "None" ? "" : ", \(m.reason)")) }
        if let problem { print("queue: not read (\(problem))") }
        SlurmQueue.advice(status: status, job: job, queue: queue).forEach { print($0) }
    } else {
        status.lines().forEach { print($0) }
        let commands = KubernetesJob.resubmitCommands(jobName: plan.jobName, namespace: plan.namespace,
                                                      shardManifest: layout.kubernetesShardJob.path, mergeManifest: layout.kubernetesMergeJob.path)
        if !status.allComplete {
            print("rerun the shards' Job (complete shards resume with nothing to do), then the merge:")
            commands.forEach { print("  " + $0) }
        } else if !status.merged {
            print("every shard is complete; merge:")
            print("  kubectl apply -f \(Quoting.shell(layout.kubernetesMergeJob.path))")
        }
    }
    return status.allComplete ? 0 : 1
}
