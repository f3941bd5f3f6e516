import Diffusion
import Foundation
import TensorEngine

/// One (class, probe) pair to score: row `row` of a scorer's noisy samples `xt` [P, C, H, W]
/// and of its noise `eps`, at `timestep`, under the model's condition `condition`.
public struct ScoringItem {
    public let xt: Tensor
    public let eps: Tensor
    public let row: Int
    public let timestep: Int
    public let condition: Int

    public init(xt: Tensor, eps: Tensor, row: Int, timestep: Int, condition: Int) {
        self.xt = xt
        self.eps = eps
        self.row = row
        self.timestep = timestep
        self.condition = condition
    }

    /// The eps-space error `loss(eps_hat(x_t, t, c), eps)` of each item, `batchSize` items per
    /// call of the model, in order, under `Autograd.noGrad`. Each item's error depends only on the
    /// item (the engine's kernels do not depend on the batch), not on the others in its call.
    public static func errors(of items: [ScoringItem], model: ConditionalNoisePredictor, schedule: NoiseSchedule,
                              loss: ErrorLoss, batchSize: Int) -> [Double] {
        var out: [Double] = []
        out.reserveCapacity(items.count)
        var start = 0
        while start < items.count {
            let batch = items[start..<Swift.min(start + batchSize, items.count)]
            let ts = batch.map(\.timestep)
            let xb = gatherRows(batch.map { ($0.xt, $0.row) }), eb = gatherRows(batch.map { ($0.eps, $0.row) })
            let labels = Tensor(shape: [batch.count], batch.map { Float($0.condition) })
            out += Autograd.noGrad {
                let prediction = model.predict(xb, timesteps: ts.map(Float.init), conditions: labels)
                let epsHat = schedule.epsilon(fromOutput: prediction, sample: xb, timesteps: ts)
                return loss.perItem(prediction: epsHat, target: eb)
            }
            start += batch.count
        }
        return out
    }

    /// The given (tensor, row) rows of [P, ...] tensors of equal shape, stacked: each run of
    /// consecutive rows from one source gathered in one op, then the pieces put back in order.
    static func gatherRows(_ rows: [(Tensor, Int)]) -> Tensor {
        Autograd.noGrad {
            var pieces: [Tensor] = []
            var start = 0
            while start < rows.count {
                var end = start + 1
                while end < rows.count && rows[end].0 === rows[start].0 { end += 1 }
                pieces.append(rows[start].0.gatherRows(rows[start..<end].map(\.1)))
                start = end
            }
            return pieces.count == 1 ? pieces[0] : Tensor.concat(pieces, axis: 0)
        }
    }
}

/// Cross-image batching: several images are classified at once, each on its own thread, and the
/// (class, probe) items their strategies ask for are pooled, so that each U-Net call is large even
/// when one image's round has a few items (the sequential rules ask for 2-10 at a time).
///
/// The threads take turns (one baton): only one runs at a time, so the engine is never used
/// concurrently and a strategy's logic stays sequential. A thread that asks for errors
/// (`errors(of:)`) hands the baton on and waits; when every image in flight is waiting, the last
/// one to ask runs all their items, in image order, `batchSize` per call, and wakes them. Images
/// are taken in index order as threads come free. An image's results do not depend on which
/// images shared its calls, because no kernel's result for an item depends on the batch; so
/// results are identical for any `imagesInFlight`, shard split or thread count.
///
/// Time is charged per image (`currentJobSeconds`): its own work, plus each shared call's time
/// in proportion to its items, so the images' seconds add up to the wall time.
public final class CrossImageBatcher: @unchecked Sendable {
    public let model: ConditionalNoisePredictor
    public let schedule: NoiseSchedule
    public let loss: ErrorLoss
    public let batchSize: Int
    public let imagesInFlight: Int

    /// Shared evaluations run so far, and the items they scored (U-Net passes).
    public private(set) var flushes = 0
    public private(set) var flushedItems = 0

    private final class Job {
        var index = 0
        var seconds = 0.0
        var runningSince = Date()
    }

    private final class Request {
        let items: [ScoringItem]
        let job: Job
        var errors: [Double]?
        init(items: [ScoringItem], job: Job) { self.items = items; self.job = job }
    }

    private let condition = NSCondition()
    private var batonHeld = false
    private var active = 0
    private var pending: [Request] = []
    private let threadKey: String

    public init(model: ConditionalNoisePredictor, schedule: NoiseSchedule, loss: ErrorLoss, batchSize: Int, imagesInFlight: Int) {
        precondition(batchSize >= 1 && imagesInFlight >= 1, "CrossImageBatcher: batchSize and imagesInFlight must be at least 1")
        self.model = model
        self.schedule = schedule
        self.loss = loss
        self.batchSize = batchSize
        self.imagesInFlight = imagesInFlight
        threadKey = "CrossImageBatcher.\(UUID().uuidString)"
    }

    private var currentJob: Job? { Thread.current.threadDictionary[threadKey] as? Job }

    /// Whether the calling thread is one of `run`'s image threads (then `errors(of:)` pools).
    public var isImageThread: Bool { currentJob != nil }

    /// Runs `body(j)` for j = 0..<count, up to `imagesInFlight` at once (j taken in order as
    /// threads come free), one thread running at a time. After an error no new j is started;
    /// the first error is rethrown once the running ones finish. With one image in flight, or
    /// one job, runs them in order on the calling thread.
    public func run(_ count: Int, _ body: (Int) throws -> Void) throws {
        let workers = Swift.min(imagesInFlight, count)
        if workers <= 1 {
            for j in 0..<count { try body(j) }
            return
        }
        let backend = Engine.backend
        // The next item to hand out and the first error: shared by the threads, read and written
        // only under `condition` (a class, so the thread closures share it instead of capturing
        // mutable locals).
        final class Shared: @unchecked Sendable { var next = 0; var firstError: Error? }
        let shared = Shared()
        // The threads call the body through a box emptied before returning, so that the
        // non-escaping closure is not kept (by a thread object) past this call.
        final class Box { var body: ((Int) throws -> Void)? }
        let box = Box()
        withoutActuallyEscaping(body) { body in
            box.body = body
            defer { box.body = nil }
            let group = DispatchGroup()
            condition.lock()
            active = workers
            condition.unlock()
            for _ in 0..<workers {
                group.enter()
                let thread = Thread { [self] in
                    Engine.initialize()
                    let job = Job()
                    Thread.current.threadDictionary[threadKey] = job
                    Engine.withBackend(any: backend) {
                        acquireBaton(job)
                        while true {
                            condition.lock()
                            let j = shared.next
                            let stop = shared.firstError != nil || j >= count
                            if !stop { shared.next += 1 }
                            condition.unlock()
                            if stop { break }
                            job.index = j
                            job.seconds = 0
                            job.runningSince = Date()
                            do { try box.body!(j) } catch {
                                condition.lock()
                                if shared.firstError == nil { shared.firstError = error }
                                condition.unlock()
                            }
                        }
                    }
                    Thread.current.threadDictionary[threadKey] = nil
                    condition.lock()
                    active -= 1
                    batonHeld = false
                    condition.broadcast()
                    condition.unlock()
                    group.leave()
                }
                thread.stackSize = 8 << 20
                thread.start()
            }
            group.wait()
        }
        if let error = shared.firstError { throw error }
    }

    /// Seconds charged to the calling image thread's current job (nil on other threads).
    public func currentJobSeconds() -> Double? {
        guard let job = currentJob else { return nil }
        return job.seconds + Date().timeIntervalSince(job.runningSince)
    }

    /// The errors of `items` (as `ScoringItem.errors`). On an image thread of `run`, pooled with
    /// the other images' items; elsewhere computed at once.
    public func errors(of items: [ScoringItem]) -> [Double] {
        guard let job = currentJob else {
            return ScoringItem.errors(of: items, model: model, schedule: schedule, loss: loss, batchSize: batchSize)
        }
        if items.isEmpty { return [] }
        condition.lock()
        job.seconds += Date().timeIntervalSince(job.runningSince)
        let request = Request(items: items, job: job)
        pending.append(request)
        batonHeld = false
        condition.broadcast()
        while request.errors == nil {
            if !batonHeld && !pending.isEmpty && pending.count == active {
                batonHeld = true
                let batch = pending.sorted { $0.job.index < $1.job.index }
                pending = []
                condition.unlock()
                let start = Date()
                let all = ScoringItem.errors(of: batch.flatMap(\.items), model: model, schedule: schedule, loss: loss, batchSize: batchSize)
                let seconds = Date().timeIntervalSince(start)
                condition.lock()
                var offset = 0
                for r in batch {
                    r.errors = Array(all[offset..<offset + r.items.count])
                    r.job.seconds += seconds * Double(r.items.count) / Double(all.count)
                    offset += r.items.count
                }
                flushes += 1
                flushedItems += all.count
                batonHeld = false
                condition.broadcast()
            } else {
                condition.wait()
            }
        }
        while batonHeld { condition.wait() }
        batonHeld = true
        job.runningSince = Date()
        condition.unlock()
        return request.errors!
    }

    private func acquireBaton(_ job: Job) {
        condition.lock()
        while batonHeld { condition.wait() }
        batonHeld = true
        job.runningSince = Date()
        condition.unlock()
    }
}
