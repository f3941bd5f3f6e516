import DiffusionClassifier
import Foundation

/// What a report shows of one robustness run folder (`diffclass robust`): its records
/// (`results.jsonl`, one line per image as `RobustnessRun` writes it), settings (`settings.json`),
/// class names (`summary.json`'s `class_names` when present) and the clean/adversarial PNG pairs
/// in `adv/` (`--save-adv`). Statistics are recomputed from the records.
public struct RobustRunData {
    public struct AttackLine: Decodable, Equatable {
        public var name: String
        public var success: Bool
        public var forwardCalls: Int
        public var backwardCalls: Int
        public var queries: Int
    }

    public struct Record: Decodable, Equatable {
        public var index: Int
        public var label: Int
        public var cleanPrediction: Int
        public var cleanCorrect: Bool
        public var attacks: [AttackLine]
        /// "robust", "broken" or "misclassified".
        public var verdict: String
        public var brokenBy: String?
        public var unetPasses: Int
        public var seconds: Double
        public var robust: Bool { verdict == "robust" }
    }

    /// A clean/adversarial pair from `adv/INDEX-clean.png` and `adv/INDEX.png` (PNG bytes).
    public struct Pair {
        public var record: Record
        public var clean: Data
        public var adversarial: Data
    }

    public var directory: URL
    public var records: [Record]
    /// settings.json flattened (sorted keys; nulls left out).
    public var settings: [(key: String, value: String)]
    public var epsilon: Double
    public var epsText: String
    public var norm: String
    /// Attack names in the order they ran (settings' `attacks`).
    public var attackNames: [String]
    /// The LM options of RDC, nil for the plain diffusion classifier.
    public var lm: String?
    public var classNames: [String]
    /// Settings other than the budget (norm, epsilon), canonical JSON: runs with the same key are
    /// one defence under one attack setting, at different budgets.
    public var familyKey: String

    public var name: String { directory.standardizedFileURL.lastPathComponent }

    /// Whether `directory/settings.json` is a robustness run's (it has `attacks` and `eps_text`).
    public static func isRobustFolder(_ directory: URL) -> Bool {
        guard let data = try? Data(contentsOf: directory.appendingPathComponent("settings.json")),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return false }
        return object["attacks"] != nil && object["eps_text"] != nil
    }

    /// Reads `directory`; needs `settings.json` of a robustness run and `results.jsonl` with at
    /// least one record. Errors name the folder or file.
    public static func load(_ directory: URL) throws -> RobustRunData {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw ClassifierError("\(directory.path): not a run folder")
        }
        let settingsURL = directory.appendingPathComponent("settings.json")
        guard let data = try? Data(contentsOf: settingsURL), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ClassifierError("\(settingsURL.path): missing or not a JSON object")
        }
        guard let attacks = object["attacks"] as? [String], let epsText = object["eps_text"] as? String,
              let epsilon = (object["epsilon"] as? NSNumber)?.doubleValue else {
            throw ClassifierError("\(settingsURL.path): not a robustness run's settings (no attacks / eps_text / epsilon)")
        }
        let resultsURL = directory.appendingPathComponent("results.jsonl")
        let text: Data
        do { text = try Data(contentsOf: resultsURL) } catch {
            throw ClassifierError("\(resultsURL.path): cannot read (\(error.localizedDescription))")
        }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        var body = text
        if let last = body.last, last != 0x0A { body = body.prefix((body.lastIndex(of: 0x0A).map { $0 + 1 }) ?? 0) }
        var records: [Record] = []
        for (n, line) in body.split(separator: 0x0A, omittingEmptySubsequences: true).enumerated() {
            do { records.append(try decoder.decode(Record.self, from: Data(line))) } catch {
                throw ClassifierError("\(resultsURL.path): line \(n + 1) is not a robustness record (\(error))")
            }
        }
        guard !records.isEmpty else { throw ClassifierError("\(resultsURL.path): no records to report on") }
        records.sort { $0.index < $1.index }
        var family = object
        family["eps_text"] = nil
        family["epsilon"] = nil
        family["norm"] = nil
        let familyData = (try? JSONSerialization.data(withJSONObject: family, options: [.sortedKeys])) ?? Data()
        var names: [String]?
        if let s = try? Data(contentsOf: directory.appendingPathComponent("summary.json")),
           let o = try? JSONSerialization.jsonObject(with: s) as? [String: Any] {
            names = o["class_names"] as? [String]
        }
        let k = records.map { Swift.max($0.label, $0.cleanPrediction) + 1 }.max() ?? 0
        if names == nil || names!.count < k { names = (0..<k).map { i in names.flatMap { i < $0.count ? $0[i] : nil } ?? "class \(i)" } }
        return RobustRunData(directory: directory, records: records,
                             settings: object.keys.sorted().compactMap { key in RunData.describe(object[key]!).map { (key, $0) } },
                             epsilon: epsilon, epsText: epsText, norm: object["norm"] as? String ?? "linf", attackNames: attacks,
                             lm: object["lm"] as? String, classNames: names!,
                             familyKey: String(decoding: familyData, as: UTF8.self))
    }

    public var n: Int { records.count }
    public var cleanCorrect: Int { records.filter(\.cleanCorrect).count }
    public var robustCount: Int { records.filter(\.robust).count }
    public var cleanAccuracy: Double { n == 0 ? 0 : Double(cleanCorrect) / Double(n) }
    public var robustAccuracy: Double { n == 0 ? 0 : Double(robustCount) / Double(n) }
    /// sqrt(p (1 - p) / n).
    public var cleanStderr: Double { Self.stderr(cleanAccuracy, n) }
    public var robustStderr: Double { Self.stderr(robustAccuracy, n) }
    static func stderr(_ p: Double, _ n: Int) -> Double { n == 0 ? 0 : (p * (1 - p) / Double(n)).squareRoot() }

    /// Images broken by each attack, in the order the attacks ran.
    public var breaks: [(name: String, count: Int)] {
        attackNames.map { a in (a, records.filter { $0.brokenBy == a }.count) }
    }

    /// Over images correct clean (the ones attacked).
    public var meanPassesPerAttacked: Double {
        let a = records.filter(\.cleanCorrect)
        return a.isEmpty ? 0 : Double(a.map(\.unetPasses).reduce(0, +)) / Double(a.count)
    }
    public var meanSecondsPerAttacked: Double {
        let a = records.filter(\.cleanCorrect)
        return a.isEmpty ? 0 : a.map(\.seconds).reduce(0, +) / Double(a.count)
    }

    /// "DC, T 5" or "RDC (LM paper 5 steps, eta 0.1), T 5": short; the settings table has the rest.
    public var defence: String {
        let t = setting("timesteps").map { ", T \($0)" } ?? ""
        return (lm.map { "RDC (\(Self.shortLM($0)))" } ?? "DC") + t
    }

    /// "LM paper 5 steps, eta 0.1" from `LikelihoodMaximization.description` text, naming the
    /// norm and the gradient only when not l_inf / exact.
    public static func shortLM(_ text: String) -> String {
        var kv: [String: String] = [:]
        for part in text.split(separator: ",") {
            let p = part.split(separator: "=", maxSplits: 1).map(String.init)
            if p.count == 2 { kv[p[0]] = p[1] }
        }
        guard let steps = kv["steps"] else { return "LM \(text)" }
        var out = "LM \(kv["variant"] ?? "?") \(steps) steps, eta \(kv["eta"] ?? "?")"
        if let n = kv["norm"], n != "linf" { out += ", \(n)" }
        if let g = kv["grad"], g != "exact" { out += ", \(g)" }
        return out
    }

    /// "APGD-CE 10 it → Square 50 q" (with ", EOT n" when averaging over draws).
    public var attackDescription: String {
        attackNames.map { a in
            let name = a == "square" ? "Square" : a.uppercased()
            if a == "square" { return "\(name) \(setting("square_queries") ?? "?") q" }
            return "\(name) \(setting("iterations") ?? "?") it"
        }.joined(separator: " → ") + ((setting("eot_draws").flatMap(Int.init) ?? 1) > 1 ? ", EOT \(setting("eot_draws")!)" : "")
    }

    public func setting(_ key: String) -> String? { settings.first { $0.key == key }?.value }

    /// Broken images with both PNGs in `adv/`, by index.
    public func pairs() -> [Pair] {
        let adv = directory.appendingPathComponent("adv")
        return records.filter { $0.brokenBy != nil }.compactMap { r in
            guard let c = try? Data(contentsOf: adv.appendingPathComponent("\(r.index)-clean.png")),
                  let a = try? Data(contentsOf: adv.appendingPathComponent("\(r.index).png")) else { return nil }
            return Pair(record: r, clean: c, adversarial: a)
        }
    }

    public func className(_ k: Int) -> String { k < classNames.count ? classNames[k] : "class \(k)" }
}
