import Foundation
import NeuralNetworks

/// How far one shard is, from its `results.jsonl` alone (so it holds whatever the scheduler says,
/// and after the scheduler has forgotten the job).
public struct ShardProgress: Equatable, Sendable {
    public enum State: String, Sendable { case complete, incomplete, missing }
    public let index: Int
    /// Images the shard owns under the limit, and how many of them its results.jsonl has.
    public let owned: Int, done: Int
    /// complete: every owned image has a complete line; incomplete: some; missing: none (no folder,
    /// or no line yet).
    public var state: State { done == owned ? .complete : done == 0 ? .missing : .incomplete }

    public init(index: Int, owned: Int, done: Int) {
        self.index = index
        self.owned = owned
        self.done = done
    }
}

/// The merged run folder (RUN itself): whether the merge wrote it, and how many images it holds.
public struct MergeProgress: Equatable, Sendable {
    /// RUN/summary.json exists (the merge step's last file).
    public let summary: Bool
    public let report: Bool
    /// Lines in RUN/results.jsonl.
    public let images: Int

    public init(summary: Bool, report: Bool, images: Int) {
        self.summary = summary
        self.report = report
        self.images = images
    }
}

/// The state of a sharded run folder: each shard's progress and the merge's.
public struct ShardedRunStatus: Sendable {
    public let layout: ShardedRunLayout
    public let shards: Int, images: Int
    public let progress: [ShardProgress]
    public let merge: MergeProgress

    public init(layout: ShardedRunLayout, shards: Int, images: Int, progress: [ShardProgress], merge: MergeProgress) {
        self.layout = layout
        self.shards = shards
        self.images = images
        self.progress = progress
        self.merge = merge
    }

    public var incomplete: [Int] { progress.filter { $0.state != .complete }.map(\.index) }
    public var allComplete: Bool { incomplete.isEmpty }
    /// The merge ran over complete shards: RUN has a summary and every image.
    public var merged: Bool { merge.summary && merge.images == images }

    /// Reads every shard's `results.jsonl` (complete lines only: an unterminated last line is a
    /// run killed mid-write, and a resume redoes that image). Refused, naming the file and line: a
    /// line that is not a JSON object with an integer `index`, or an index the shard does not own
    /// (the folder holds another run's results).
    public static func inspect(_ layout: ShardedRunLayout, shards: Int, images: Int) throws -> ShardedRunStatus {
        guard shards >= 1, images >= shards else { throw ClusterError("status: need 1 <= shards <= images, got \(shards) shards of \(images) images") }
        var progress: [ShardProgress] = []
        for i in 0..<shards {
            let owned = Set(ShardPlan.ownedIndices(shard: i, of: shards, images: images))
            let url = layout.shard(i).appendingPathComponent("results.jsonl")
            var seen = Set<Int>()
            for (line, index) in try indices(url) {
                guard owned.contains(index) else {
                    throw ClusterError(ErrorText("\(url.path): line \(line) is image \(index), which is not shard \(i)'s of \(shards) over \(images) images; "
                        + "this folder holds another run's results"))
                }
                seen.insert(index)
            }
            progress.append(ShardProgress(index: i, owned: owned.count, done: seen.count))
        }
        let fm = FileManager.default
        let mergedImages = Set(try indices(layout.mergedResults).map(\.index)).count
        let merge = MergeProgress(summary: fm.fileExists(atPath: layout.mergedSummary.path), report: fm.fileExists(atPath: layout.report.path),
                                  images: mergedImages)
        return ShardedRunStatus(layout: layout, shards: shards, images: images, progress: progress, merge: merge)
    }

    /// The `index` of each complete line of a results.jsonl (eval and robust lines both have one),
    /// with its line number; none when the file does not exist.
    static func indices(_ url: URL) throws -> [(line: Int, index: Int)] {
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw ClusterError("\(url.path): unreadable (\(error.localizedDescription))") }
        let complete = data.last == 0x0A ? data : data.prefix((data.lastIndex(of: 0x0A).map { $0 + 1 }) ?? data.startIndex)
        var out: [(Int, Int)] = []
        for (n, line) in complete.split(separator: 0x0A, omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                  let number = object["index"] as? NSNumber, let index = Int(exactly: number.doubleValue), index >= 0 else {
                throw ClusterError("\(url.path): line \(n + 1) is not a result line (a JSON object with an integer index)")
            }
            out.append((n + 1, index))
        }
        return out
    }

    /// "0-2,5,7-8": the shards as an sbatch `--array` list.
    public static func arrayList(_ indices: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        let sorted = indices.sorted()
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count, sorted[j + 1] == sorted[j] + 1 { j += 1 }
            parts.append(j == i ? "\(sorted[i])" : "\(sorted[i])-\(sorted[j])")
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    /// One line per shard and one for the merge, e.g. "shard 2: incomplete, 1 of 2 images".
    public func lines(queue: [Int: String] = [:]) -> [String] {
        var out: [String] = []
        for p in progress {
            let state: String
            switch p.state {
            case .complete: state = "complete, \(p.done) of \(p.owned) images"
            case .incomplete: state = "incomplete, \(p.done) of \(p.owned) images"
            case .missing: state = "missing, 0 of \(p.owned) images"
            }
            out.append("shard \(p.index): \(state)" + (queue[p.index].map { " (\($0))" } ?? ""))
        }
        if merged {
            out.append("merge: done, \(merge.images) images in \(layout.run.path)" + (merge.report ? ", report.html" : ", no report.html yet"))
        } else if merge.summary || merge.images > 0 {
            out.append("merge: partial, \(merge.images) of \(images) images in \(layout.run.path) (merged before every shard was complete)")
        } else {
            out.append("merge: not run")
        }
        return out
    }
}
