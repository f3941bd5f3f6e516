import DiffusionClassifier
import Foundation

/// What a report shows of one robustness run folder (`diffclass robust`): its records
/// (`results.jsonl`, one line per image as `RobustnessRun` writes it), settings (`settings.json`),
/// class names (`summary.json`'s `class_names` when present) and the clean/adversarial PNG pairs
/// in `adv/` (`--save-adv`). Statistics are recomputed from the records.
public struct RobustRunData {
    public typealias Record = RobustRecord

    /// A clean/adversarial pair from `adv/INDEX-clean.png` and `adv/INDEX.png` (PNG bytes).
    public struct Pair {
        public var record: Record
        public var clean: Data
        public var adversarial: Data
    }

    public var directory: URL
    public var records: [Record]
    public var typedSettings: RobustnessSettings
    /// settings.json flattened (sorted keys; nulls left out).
    public var settings: [(key: String, value: String)]
    public var epsilon: Double { typedSettings.epsilon }
    public var epsText: String { typedSettings.epsText }
    public var norm: String { typedSettings.norm.rawValue }
    /// Attack names in the order they ran (settings' `attacks`).
    public var attackNames: [String] { typedSettings.attacks.map(\.rawValue) }
    /// The LM options of RDC, nil for the plain diffusion classifier.
    public var lm: String? { typedSettings.lm?.description }
    public var classNames: [String]
    /// Settings other than the budget (norm, epsilon), canonical JSON: runs with the same key are
    /// one defence under one attack setting, at different budgets.
    public var familyKey: String

    public var name: String { directory.standardizedFileURL.lastPathComponent }

    /// Whether `directory` is a robustness run folder (`RunKind.of`).
    public static func isRobustFolder(_ directory: URL) -> Bool { RunKind.of(directory) == .robust }

    /// Reads `directory`; needs `settings.json` of a robustness run and `results.jsonl` with at
    /// least one record. Errors name the folder or file.
    public static func load(_ directory: URL) throws -> RobustRunData {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDir), isDir.boolValue else {
            throw ClassifierError("\(directory.path): not a run folder")
        }
        let folder = RobustnessFolder(directory)
        let settings = try folder.readSettings()
        let text: Data
        do { text = try Data(contentsOf: folder.resultsURL) } catch {
            throw ClassifierError("\(folder.resultsURL.path): cannot read (\(error.localizedDescription))")
        }
        var records = try RobustnessFolder.parseResults(text, path: folder.resultsURL.path).map(\.record)
        guard !records.isEmpty else { throw ClassifierError("\(folder.resultsURL.path): no records to report on") }
        records.sort { $0.index < $1.index }
        let object = (try? JSONSerialization.jsonObject(with: Data(contentsOf: folder.settingsURL)) as? [String: Any]) ?? [:]
        var family = (try? JSONSerialization.jsonObject(with: settings.encoded()) as? [String: Any]) ?? [:]
        family["eps_text"] = nil
        family["epsilon"] = nil
        family["norm"] = nil
        let familyData = (try? JSONSerialization.data(withJSONObject: family, options: [.sortedKeys])) ?? Data()
        var names: [String]?
        if let s = try? Data(contentsOf: folder.summaryURL), let o = try? JSONSerialization.jsonObject(with: s) as? [String: Any] {
            names = o["class_names"] as? [String]
        }
        let k = records.map { Swift.max($0.label, $0.cleanPrediction) + 1 }.max() ?? 0
        if names == nil || names!.count < k { names = (0..<k).map { i in names.flatMap { i < $0.count ? $0[i] : nil } ?? "class \(i)" } }
        return RobustRunData(directory: directory, records: records, typedSettings: settings,
                             settings: object.keys.sorted().compactMap { key in RunData.describe(object[key]!).map { (key, $0) } },
                             classNames: names!, familyKey: String(decoding: familyData, as: UTF8.self))
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
        attackNames.map { a in (a, records.filter { $0.brokenBy?.rawValue == a }.count) }
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
