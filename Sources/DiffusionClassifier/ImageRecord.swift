import Foundation

/// One line of `RUN/results.jsonl`: one image's outcome.
public struct ImageRecord: Codable, Equatable, Sendable {
    public var index: Int
    public var label: Int
    public var prediction: Int
    /// Per class: mean weighted error over the timesteps it saw (null if never scored).
    public var meanErrors: [Double?]
    public var probabilities: [Double]
    /// Per class: how many timesteps it was scored on.
    public var scores: [Int]
    /// U-Net forward passes for this image.
    public var calls: Int
    public var seconds: Double

    public init(index: Int, label: Int, classification c: Classification, seconds: Double) {
        self.index = index
        self.label = label
        prediction = c.prediction
        meanErrors = c.meanErrors
        probabilities = c.probabilities
        scores = c.scoreCounts
        calls = c.calls
        self.seconds = seconds
    }

    public var correct: Bool { prediction == label }

    /// The record without its timing, for comparing runs.
    public var withoutTiming: ImageRecord { var r = self; r.seconds = 0; return r }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys]
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }()

    /// One JSON line, newline-terminated.
    public func line() throws -> Data {
        var data = try ImageRecord.encoder.encode(self)
        data.append(0x0A)
        return data
    }

    public static func parse(_ line: Data) throws -> ImageRecord { try decoder.decode(ImageRecord.self, from: line) }
}

/// Which dataset indices a run covers: the first `limit` images (all if nil), then those with
/// i % count == index (`--shard index/count`), as the public code's `idxs[worker_idx::n_workers]`.
public struct RunScope: Equatable, Sendable {
    public var limit: Int?
    public var shard: (index: Int, count: Int)?

    public init(limit: Int? = nil, shard: (index: Int, count: Int)? = nil) {
        self.limit = limit
        self.shard = shard
    }

    public static func == (a: RunScope, b: RunScope) -> Bool {
        a.limit == b.limit && a.shard?.index == b.shard?.index && a.shard?.count == b.shard?.count
    }

    /// Parses "I/N" with 0 <= I < N.
    public static func parseShard(_ text: String) throws -> (index: Int, count: Int) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw ClassifierError("--shard: '\(text)' is not I/N with 0 <= I < N")
        }
        return (i, n)
    }

    public func indices(datasetCount: Int) -> [Int] {
        let n = Swift.min(limit ?? datasetCount, datasetCount)
        guard let shard else { return Array(0..<n) }
        return (0..<n).filter { $0 % shard.count == shard.index }
    }
}
