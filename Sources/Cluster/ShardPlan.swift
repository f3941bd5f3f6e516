import DiffusionClassifier
import Foundation
import NeuralNetworks

/// What a sharded run is (`RUN/shards/plan.json`): the command each shard runs, the number of
/// shards, the number of images under the limit, and how the scheduler runs it. Written by
/// `diffclass submit`; read by `diffclass status` and by a later `submit` of the same run, which
/// may change the scheduler's options (partition, time, ...) but not what decides the shards.
public struct ShardPlan: Codable, Equatable, Sendable {
    public var version = 1
    /// "slurm" or "k8s".
    public var scheduler: String
    public var command: ShardedCommand
    /// RUN as the tasks see it: absolute for Slurm; as given for Kubernetes (a path in the pods).
    public var run: String
    public var shards: Int
    /// The images the run covers: min(--limit, images in the split).
    public var images: Int
    /// Where the tasks run (relative paths in the command are relative to it); nil: the pod's default.
    public var workingDirectory: String?
    /// The diffclass binary the tasks run.
    public var diffclass: String
    /// Job names: the shard array / indexed Job, and the merge job.
    public var jobName: String
    public var namespace: String?

    public init(scheduler: String, command: ShardedCommand, run: String, shards: Int, images: Int, workingDirectory: String?,
                diffclass: String, jobName: String, namespace: String? = nil) throws {
        guard images >= 1 else { throw ClusterError("submit: the run has no images (the split is empty or the limit is 0)") }
        guard shards >= 1 else { throw ClusterError("\(Setting.shards) expects a positive integer, got \(shards)") }
        guard shards <= images else {
            throw ClusterError("\(Setting.shards) \(shards): more shards than the run's \(images) images (every shard needs at least one)")
        }
        self.scheduler = scheduler
        self.command = command
        self.run = run
        self.shards = shards
        self.images = images
        self.workingDirectory = workingDirectory
        self.diffclass = diffclass
        self.jobName = jobName
        self.namespace = namespace
    }

    /// The dataset indices shard `i` owns: i, i + N, ... below `images` (`RunScope`'s rule, the one
    /// `--shard I/N` runs).
    public func ownedIndices(shard i: Int) -> [Int] {
        ShardPlan.ownedIndices(shard: i, of: shards, images: images)
    }

    public static func ownedIndices(shard i: Int, of count: Int, images: Int) -> [Int] {
        RunScope(limit: images, shard: (i, count)).indices(datasetCount: images)
    }

    /// What differs in what decides the shards' results and layout (command, shards, images, RUN);
    /// empty when a new submission may reuse the shard folders.
    public func shardDifferences(from old: ShardPlan) -> [String] {
        var d: [String] = []
        if command.command != old.command.command { d.append("command: \(old.command.command) -> \(command.command)") }
        if command.arguments != old.command.arguments {
            d.append("arguments: \(Quoting.shell(old.command.arguments)) -> \(Quoting.shell(command.arguments))")
        }
        if shards != old.shards { d.append("shards: \(old.shards) -> \(shards)") }
        if images != old.images { d.append("images: \(old.images) -> \(images)") }
        if run != old.run { d.append("run: \(old.run) -> \(run)") }
        return d
    }

    public static func load(_ url: URL) throws -> ShardPlan {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ClusterError("\(url.path): cannot read the shard plan (\(error.localizedDescription)); is this a run made by diffclass submit?")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        do { return try decoder.decode(ShardPlan.self, from: data) } catch {
            throw ClusterError("\(url.path): not a shard plan (\(error))")
        }
    }

    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        var data = try e.encode(self)
        data.append(0x0A)
        return data
    }

    /// Refuses to plan into `layout` when it holds something this plan would clash with: an
    /// unsharded run (`settings.json` without a plan), or a plan whose shards differ (naming the
    /// differences). Returns the old plan, if any.
    @discardableResult
    public func checkCompatible(with layout: ShardedRunLayout) throws -> ShardPlan? {
        let fm = FileManager.default
        if fm.fileExists(atPath: layout.planURL.path) {
            let old = try ShardPlan.load(layout.planURL)
            let diff = shardDifferences(from: old)
            guard diff.isEmpty else {
                throw ClusterError("\(layout.planURL.path): this run was submitted with other shards (\(diff.joined(separator: "; "))); "
                    + "submit the same command and \(Setting.shards) to continue it, or use another \(Setting.runFolder)")
            }
            return old
        }
        if fm.fileExists(atPath: layout.mergedSettings.path) || fm.fileExists(atPath: layout.mergedResults.path) {
            throw ClusterError("\(layout.run.path) holds a run that submit did not make (settings.json or results.jsonl without shards/plan.json); use another \(Setting.runFolder)")
        }
        if fm.fileExists(atPath: layout.shardsDirectory.path) {
            throw ClusterError("\(layout.shardsDirectory.path) exists without plan.json; use another \(Setting.runFolder)")
        }
        return nil
    }
}
