import Foundation
import NeuralNetworks

/// Temperature scaling of the classifier's posterior (Guo et al. 2017, applied to
/// p = softmax(-tau * mean error), see `Posterior`): fit the one parameter tau on held-out
/// images by minimising the mean negative log-likelihood of their labels. tau = 1 is the public
/// code's nearly uniform softmax; the fitted tau makes the probabilities usable. Fitting never
/// changes predictions (softmax is monotone in -error for any tau > 0).
public enum Calibration {
    /// One held-out image: per class mean error (nil = never scored, probability 0) and its label.
    public struct Example: Sendable {
        public var meanErrors: [Double?]
        public var label: Int
        public init(meanErrors: [Double?], label: Int) {
            self.meanErrors = meanErrors
            self.label = label
        }
    }

    /// Mean over examples of -log p_tau(label | x). Throws when an example's label class was
    /// never scored (its probability is 0 for every tau).
    public static func nll(_ examples: [Example], tau: Double) throws -> Double {
        try derivatives(examples, tau: tau).value
    }

    /// NLL(tau) and its first two derivatives in tau: d = mean(e_y - E_p[e]), d2 = mean(Var_p[e]).
    /// NLL is convex in tau (a log-sum-exp of functions linear in tau, minus a linear one).
    static func derivatives(_ examples: [Example], tau: Double) throws -> (value: Double, d1: Double, d2: Double) {
        guard !examples.isEmpty else { throw ClassifierError("calibration: no examples") }
        var v = 0.0, d1 = 0.0, d2 = 0.0
        for (n, x) in examples.enumerated() {
            guard x.label >= 0, x.label < x.meanErrors.count, let ey = x.meanErrors[x.label] else {
                throw ClassifierError("calibration: example \(n): label \(x.label) has no mean error")
            }
            let errors = x.meanErrors.compactMap { $0 }
            let m = errors.min()!
            // log sum exp(-tau e) = -tau m + log sum exp(-tau (e - m)), stable for any tau >= 0.
            let w = errors.map { exp(-tau * ($0 - m)) }
            let z = w.reduce(0, +)
            let mean = zip(w, errors).map { $0 * $1 }.reduce(0, +) / z
            let second = zip(w, errors).map { $0 * ($1 - mean) * ($1 - mean) }.reduce(0, +) / z
            v += tau * (ey - m) + log(z)
            d1 += ey - mean
            d2 += second
        }
        let n = Double(examples.count)
        return (v / n, d1 / n, d2 / n)
    }

    /// The tau in [`lower`, `upper`] minimising the NLL: golden-section search on log tau (the NLL
    /// is unimodal there, being convex in tau), then Newton steps in tau to polish. A minimum at
    /// a bound (e.g. separable data, where NLL falls forever as tau grows) returns that bound.
    public static func fitTau(_ examples: [Example], lower: Double = 1e-3, upper: Double = 1e9) throws -> Double {
        precondition(lower > 0 && upper > lower)
        let f = { (s: Double) throws -> Double in try nll(examples, tau: exp(s)) }
        let g = (5.0.squareRoot() - 1) / 2
        var a = log(lower), b = log(upper)
        var c = b - g * (b - a), d = a + g * (b - a)
        var fc = try f(c), fd = try f(d)
        while b - a > 1e-9 {
            if fc <= fd {
                b = d; d = c; fd = fc
                c = b - g * (b - a); fc = try f(c)
            } else {
                a = c; c = d; fc = fd
                d = a + g * (b - a); fd = try f(d)
            }
        }
        var tau = exp((a + b) / 2)
        for _ in 0..<5 {
            let (_, d1, d2) = try derivatives(examples, tau: tau)
            guard d2 > 0 else { break }
            let next = tau - d1 / d2
            guard next > lower, next < upper, try nll(examples, tau: next) <= (try nll(examples, tau: tau)) else { break }
            tau = next
        }
        return tau
    }

    /// Expected calibration error, the standard definition (Guo et al. 2017): confidence = the
    /// largest probability, correct = its class (the first on ties) is the label; `bins` equal-width
    /// bins over [0, 1] (bin i holds confidences in (i/bins, (i+1)/bins], confidence 0 in bin 0);
    /// ECE = sum over bins of |B|/n * |accuracy(B) - mean confidence(B)|.
    public static func expectedCalibrationError(probabilities: [[Double]], labels: [Int], bins: Int = 15) -> Double {
        precondition(probabilities.count == labels.count && bins >= 1)
        guard !labels.isEmpty else { return 0 }
        var count = [Int](repeating: 0, count: bins), hits = [Double](repeating: 0, count: bins)
        var confidence = [Double](repeating: 0, count: bins)
        for (p, y) in zip(probabilities, labels) {
            let top = p.indices.max { (p[$0], -$0) < (p[$1], -$1) }!
            let conf = p[top]
            let b = Swift.min(Swift.max(Int((conf * Double(bins)).rounded(.up)) - 1, 0), bins - 1)
            count[b] += 1
            hits[b] += top == y ? 1 : 0
            confidence[b] += conf
        }
        let n = Double(labels.count)
        return (0..<bins).filter { count[$0] > 0 }.map { b in
            let k = Double(count[b])
            return k / n * abs(hits[b] / k - confidence[b] / k)
        }.reduce(0, +)
    }

    /// Fits tau on `examples` and measures NLL and ECE at tau = 1 and at the fitted tau.
    public static func fit(_ examples: [Example], bins: Int = 15) throws -> CalibrationResult {
        let tau = try fitTau(examples)
        func ece(_ t: Double) -> Double {
            expectedCalibrationError(probabilities: examples.map { Posterior.probabilities(meanErrors: $0.meanErrors, tau: t) },
                                     labels: examples.map(\.label), bins: bins)
        }
        let correct = examples.filter { x in
            let p = Posterior.probabilities(meanErrors: x.meanErrors, tau: 1)
            return p.indices.max { (p[$0], -$0) < (p[$1], -$1) } == x.label
        }.count
        return CalibrationResult(tau: tau, n: examples.count, accuracy: Double(correct) / Double(examples.count), bins: bins,
                                 nllBefore: try nll(examples, tau: 1), nllAfter: try nll(examples, tau: tau),
                                 eceBefore: ece(1), eceAfter: ece(tau))
    }
}

/// `CAL.json` (`diffclass calibrate`): the fitted tau, with NLL and ECE before (tau = 1) and
/// after, and where it was fitted. `eval --calibration CAL.json` uses `tau` and refuses a run
/// whose loss or weighting differ from `loss`/`weighting` here (the error scale, hence tau, depends on them).
public struct CalibrationResult: Codable, Equatable, Sendable {
    public var tau: Double
    public var n: Int
    /// Top-1 accuracy of argmax p (the same at every tau).
    public var accuracy: Double
    public var bins: Int
    public var nllBefore: Double
    public var nllAfter: Double
    public var eceBefore: Double
    public var eceAfter: Double
    /// Where it was fitted (set by the caller): the run folder and its settings.
    public var run: String?
    public var model: String?
    public var dataset: String?
    public var split: String?
    public var loss: String?
    public var weighting: String?

    public init(tau: Double, n: Int, accuracy: Double, bins: Int, nllBefore: Double, nllAfter: Double, eceBefore: Double, eceAfter: Double) {
        self.tau = tau
        self.n = n
        self.accuracy = accuracy
        self.bins = bins
        self.nllBefore = nllBefore
        self.nllAfter = nllAfter
        self.eceBefore = eceBefore
        self.eceAfter = eceAfter
    }

    /// Fits on the records of an evaluation run folder (its `results.jsonl`, read, not modified).
    public static func fit(run directory: URL, bins: Int = 15) throws -> CalibrationResult {
        let folder = EvaluationFolder(directory)
        let settings = try folder.readSettings()
        let resultsURL = folder.resultsURL
        let data: Data
        do { data = try Data(contentsOf: resultsURL) } catch { throw ClassifierError("\(resultsURL.path): cannot read (no results yet?)") }
        let records = try EvaluationFolder.parseResults(data, path: resultsURL.path).map(\.record)
        guard !records.isEmpty else { throw ClassifierError("\(resultsURL.path): no results to calibrate on") }
        var result: CalibrationResult
        do {
            result = try Calibration.fit(records.map { Calibration.Example(meanErrors: $0.comparableErrors, label: $0.label) }, bins: bins)
        } catch {
            throw ClassifierError("\(resultsURL.path): \(error)")
        }
        result.run = directory.standardizedFileURL.path
        result.model = settings.model
        result.dataset = settings.dataset
        result.split = settings.split
        result.loss = settings.loss.rawValue
        result.weighting = settings.weighting.name
        return result
    }

    public func encoded() throws -> Data {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return try e.encode(self)
    }

    /// Reads `CAL.json`; errors name the file.
    public static func load(_ url: URL) throws -> CalibrationResult {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ClassifierError("\(url.path): not a calibration file (\(error))")
        }
        return try parse(data, file: url.path)
    }

    /// Parses a `CAL.json`'s contents; errors name `file`.
    public static func parse(_ data: Data, file: String) throws -> CalibrationResult {
        do {
            let d = JSONDecoder()
            d.keyDecodingStrategy = .convertFromSnakeCase
            let r = try d.decode(CalibrationResult.self, from: data)
            guard r.tau.isFinite, r.tau > 0 else { throw ClassifierError("tau \(r.tau) is not a positive number") }
            return r
        } catch {
            throw ClassifierError("\(file): not a calibration file (\(error))")
        }
    }

    /// Checks that an evaluation's settings match what tau was fitted for (loss and weighting,
    /// compared as values: "exp" and "exp:7" are the same weighting).
    public func check(against settings: EvaluationSettings, file: String) throws {
        if let loss, ErrorLoss(rawValue: loss) != settings.loss {
            throw ClassifierError("\(file): tau was fitted with \(Setting.loss) \(loss), this run uses \(Setting.loss) \(settings.loss.rawValue)")
        }
        if let weighting, (try? TimestepWeighting(parsing: weighting)) != settings.weighting {
            throw ClassifierError("\(file): tau was fitted with \(Setting.weighting) \(weighting), this run uses \(Setting.weighting) \(settings.weighting.name)")
        }
    }
}
