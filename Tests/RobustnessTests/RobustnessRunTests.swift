import Diffusion
import DiffusionClassifier
import Foundation
import NeuralNetworks
import Robustness
import TensorEngine
import XCTest

/// `RobustnessRun` on a tiny random class-conditional U-Net (8x8, 1 channel, 3 classes + null).
final class RobustnessRunTests: XCTestCase {
    static func tinyModel(classes: Int = 3, seed: UInt64 = 3) -> UNet2DModel {
        UNet2DModel(config: .tiny(classes: classes), seed: seed)
    }

    let model = tinyModel()
    let schedule = NoiseSchedule(SchedulerConfig(numTrainTimesteps: 100, predictionType: "epsilon"))
    lazy var images: Tensor = {
        var g = RandomGenerator(seed: 11)
        return Tensor.uniform([2, 1, 8, 8], low: 0.1, high: 0.9, generator: &g)
    }()
    /// Labels equal to the clean predictions (at the run's evaluation randomness), so the attacks run.
    func cleanLabels(_ s: RobustnessSettings) throws -> [Int] {
        let (clf, _) = try RobustnessRun.makeClassifier(settings: s, model: model, schedule: schedule, classes: 3)
        return try (0..<2).map { i in
            var g = RandomGenerator(seed: s.seed).derived(UInt64(i))
            let z = Autograd.noGrad { clf.logits(images.sliced(axis: 0, i..<(i + 1)), randomness: g.nextUInt64()).scalars }
            return z.indices.max { z[$0] < z[$1] }!
        }
    }

    func settings(eps: String = "1/255", attacks: [String] = ["apgd-ce", "square"], lm: String? = nil) throws -> RobustnessSettings {
        try RobustnessSettings(model: "tiny", dataset: "random", split: "test", norm: .linf, epsText: eps,
                               attacks: AttackKind.list(parsing: attacks.joined(separator: ",")), iterations: 2, squareQueries: 2,
                               eotDraws: 1, timestepCount: 2, lm: lm.map { try LikelihoodMaximization(parsing: $0) }, seed: 5)
    }

    func run(_ dir: URL, _ s: RobustnessSettings, indices: [Int], saveAdv: Bool = false) throws -> (RobustSummary, [Int]) {
        let (clf, counter) = try RobustnessRun.makeClassifier(settings: s, model: model, schedule: schedule, classes: 3)
        let run = try RobustnessRun(directory: dir, settings: s)
        var attacked: [Int] = []
        let x = images
        let summary = try run.run(indices: indices, labels: try cleanLabels(s), limit: indices.count, classifier: clf, counter: counter,
                                  image: { i in attacked.append(i); return x.sliced(axis: 0, i..<(i + 1)) }, saveAdversarial: saveAdv)
        return (summary, attacked)
    }

    func tempDir() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("robust-\(UUID().uuidString)")
    }

    func testRunWritesFilesResumesAndRefusesChangedSettings() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try settings()
        let (first, done1) = try run(dir, s, indices: [0])
        XCTAssertEqual(done1, [0])
        XCTAssertEqual(first.n, 1)
        for f in ["settings.json", "results.jsonl", "summary.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(f).path), f)
        }
        // Resume: index 0 is skipped, 1 is attacked.
        let (summary, done2) = try run(dir, s, indices: [0, 1], saveAdv: true)
        XCTAssertEqual(done2, [1])
        XCTAssertEqual(summary.n, 2)
        let lines = try String(contentsOf: dir.appendingPathComponent("results.jsonl"), encoding: .utf8)
            .split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        XCTAssertEqual(lines.map { $0["index"] as! Int }, [0, 1])
        for l in lines {
            let verdict = l["verdict"] as! String
            XCTAssertTrue(["robust", "broken", "misclassified"].contains(verdict))
            let attacks = l["attacks"] as! [[String: Any]]
            if l["clean_correct"] as! Bool {
                XCTAssertFalse(attacks.isEmpty)
                XCTAssertGreaterThan(l["unet_passes"] as! Int, 0)
            } else {
                XCTAssertTrue(attacks.isEmpty)
            }
            if verdict == "broken" {
                XCTAssertNotNil(l["broken_by"] as? String)
                XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("adv/\(l["index"] as! Int).png").path))
            }
        }
        XCTAssertEqual(summary.cleanAccuracy, 1)
        XCTAssertEqual(summary.cleanStderr, 0)
        XCTAssertLessThanOrEqual(summary.robustAccuracy, summary.cleanAccuracy)
        XCTAssertEqual(summary.robustStderr, (summary.robustAccuracy * (1 - summary.robustAccuracy) / 2).squareRoot(), accuracy: 1e-12)
        XCTAssertEqual(summary.attacked, 2)
        XCTAssertGreaterThan(summary.meanUnetPassesPerAttacked, 0)
        XCTAssertEqual(Set(summary.breaks.keys), ["apgd-ce", "square"])
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("summary.json"))) as! [String: Any]
        for k in ["clean_accuracy", "clean_stderr", "robust_accuracy", "robust_stderr", "n", "breaks",
                  "mean_unet_passes_per_attacked", "mean_seconds_per_attacked", "settings", "seed"] {
            XCTAssertNotNil(json[k], k)
        }
        // Same settings again: nothing attacked.
        XCTAssertEqual(try run(dir, s, indices: [0, 1]).1, [])
        // Changed settings are refused, naming the difference.
        XCTAssertThrowsError(try RobustnessRun(directory: dir, settings: try settings(eps: "2/255"))) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("eps_text") && text.contains("epsilon"), text)
        }
    }

    func testRDCRunWritesALine() throws {
        let dir = tempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let s = try settings(attacks: ["pgd"], lm: "steps=1,eta=8/255,variant=paper")
        let (summary, done) = try run(dir, s, indices: [0])
        XCTAssertEqual(done, [0])
        XCTAssertEqual(summary.n, 1)
        XCTAssertEqual(summary.attacked, 1)
        XCTAssertGreaterThan(summary.meanUnetPassesPerAttacked, 0)
    }

    /// U-Net passes = forward items + recorded items (each gets one backward): for the plain
    /// classifier K*T per call plus K*T per gradient call; RDC adds LM's 1 forward + 1 backward
    /// per call (its inner gradient runs even in no-grad forwards).
    func testPassCountsAreForwardPlusBackwardItems() throws {
        for lm in [nil, "steps=1,eta=8/255,variant=paper"] as [String?] {
            let dir = tempDir()
            defer { try? FileManager.default.removeItem(at: dir) }
            let s = try settings(attacks: ["apgd-ce", "square"], lm: lm)
            _ = try run(dir, s, indices: [0, 1])
            let items = 3 * 2, lmPasses = lm == nil ? 0 : 2
            for line in try String(contentsOf: dir.appendingPathComponent("results.jsonl"), encoding: .utf8).split(separator: "\n") {
                let l = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                let attacks = l["attacks"] as! [[String: Any]]
                let forward = attacks.map { $0["forward_calls"] as! Int }.reduce(0, +)
                let backward = attacks.map { $0["backward_calls"] as! Int }.reduce(0, +)
                XCTAssertGreaterThan(backward, 0)
                XCTAssertEqual(l["unet_passes"] as? Int, (items + lmPasses) * (1 + forward) + items * backward, "lm \(lm ?? "none")")
            }
        }
    }

    /// Shards (`RunScope` indices) merged give the unsharded run's lines (up to seconds); overlaps
    /// and different settings are refused; a run with eps 1 breaks every image and `--save-adv`
    /// keeps clean and adversarial PNGs and a pairs grid over resumes.
    func testShardsMergeToTheUnshardedRun() throws {
        let root = tempDir()
        defer { try? FileManager.default.removeItem(at: root) }
        let s = try settings(eps: "1", attacks: ["apgd-ce"])
        let names = ["a", "b", "c"]
        func runScoped(_ name: String, _ scope: RunScope, saveAdv: Bool = false) throws -> RobustSummary {
            let (clf, counter) = try RobustnessRun.makeClassifier(settings: s, model: model, schedule: schedule, classes: 3)
            let r = try RobustnessRun(directory: root.appendingPathComponent(name), settings: s)
            let x = images
            return try r.run(indices: scope.indices(datasetCount: 2), labels: try cleanLabels(s), classNames: names, limit: scope.limit,
                             shard: scope.shard.map { "\($0.index)/\($0.count)" }, classifier: clf, counter: counter,
                             image: { x.sliced(axis: 0, $0..<($0 + 1)) }, saveAdversarial: saveAdv)
        }
        // The whole run in two resumes (limit 1, then 2), with --save-adv.
        _ = try runScoped("all", RunScope(limit: 1), saveAdv: true)
        let whole = try runScoped("all", RunScope(limit: 2), saveAdv: true)
        XCTAssertEqual(whole.robustAccuracy, 0, "eps 1 covers the whole box")
        XCTAssertEqual(whole.classNames, names)
        let adv = root.appendingPathComponent("all/adv")
        for f in ["0.png", "0-clean.png", "1.png", "1-clean.png", "pairs.png"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: adv.appendingPathComponent(f).path), f)
        }
        let grid = try Data(contentsOf: adv.appendingPathComponent("pairs.png"))
        let height = grid[20..<24].reduce(0) { $0 << 8 | Int($1) }
        XCTAssertEqual(height, 2 * 8 + 3 * 2, "both pairs, not only the last resume's")

        let s0 = try runScoped("s0", RunScope(limit: 2, shard: (0, 2)))
        let s1 = try runScoped("s1", RunScope(limit: 2, shard: (1, 2)))
        XCTAssertEqual(s0.n, 1); XCTAssertEqual(s1.n, 1); XCTAssertEqual(s1.shard, "1/2")
        let report = try RobustnessRun.merge([root.appendingPathComponent("s1"), root.appendingPathComponent("s0")],
                                             into: root.appendingPathComponent("merged"))
        XCTAssertEqual(report.counts, [1, 1])
        XCTAssertEqual(report.missing, [])
        XCTAssertEqual(report.summary.n, 2)
        XCTAssertEqual(report.summary.classNames, names)
        XCTAssertNil(report.summary.shard)
        func lines(_ name: String) throws -> [[String: Any]] {
            try String(contentsOf: root.appendingPathComponent("\(name)/results.jsonl"), encoding: .utf8).split(separator: "\n").map {
                var o = try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
                o["seconds"] = nil
                return o
            }
        }
        XCTAssertEqual(try lines("merged").map { NSDictionary(dictionary: $0) }, try lines("all").map { NSDictionary(dictionary: $0) })
        // Refusals: overlap, different settings, an existing output.
        XCTAssertThrowsError(try RobustnessRun.merge([root.appendingPathComponent("s0"), root.appendingPathComponent("all")],
                                                     into: root.appendingPathComponent("m2"))) { XCTAssertTrue("\($0)".contains("image 0 is in both"), "\($0)") }
        let other = try RobustnessRun(directory: root.appendingPathComponent("other"), settings: try settings(eps: "2/255"))
        _ = other
        XCTAssertThrowsError(try RobustnessRun.merge([root.appendingPathComponent("s0"), root.appendingPathComponent("other")],
                                                     into: root.appendingPathComponent("m3"))) { XCTAssertTrue("\($0)".contains("eps_text"), "\($0)") }
        XCTAssertThrowsError(try RobustnessRun.merge([root.appendingPathComponent("s0")], into: root.appendingPathComponent("merged"))) {
            XCTAssertTrue("\($0)".contains("exists"), "\($0)")
        }
        XCTAssertEqual(RunKind.of(root.appendingPathComponent("s0")), .robust)
    }

    func testEpsilonParsing() throws {
        XCTAssertEqual(try RobustnessSettings.parseEpsilon("8/255"), 8.0 / 255.0, accuracy: 1e-15)
        XCTAssertEqual(try RobustnessSettings.parseEpsilon("0.1"), 0.1)
        for bad in ["", "abc", "8/0", "1/2/3", "-0.1", "2", "nan", "8/x"] {
            XCTAssertThrowsError(try RobustnessSettings.parseEpsilon(bad), bad) { error in
                XCTAssertTrue(names(error, .epsilon), "\(error)")
            }
        }
        XCTAssertThrowsError(try settings(eps: "oops")) { XCTAssertTrue(names($0, .epsilon), "\($0)") }
    }

    func testBadAttackAndNormAreRefused() {
        XCTAssertThrowsError(try settings(attacks: ["fab"])) { XCTAssertTrue(names($0, .attacks), "\($0)") }
        XCTAssertThrowsError(try RobustnessSettings(model: "m", dataset: "d", split: "test", norm: .l2, epsText: "0.5",
                                                    attacks: [.square])) { XCTAssertTrue("\($0)".contains("square")) }
        XCTAssertThrowsError(try PerturbationNorm(parsing: "l1")) { XCTAssertTrue(names($0, .norm), "\($0)") }
        XCTAssertThrowsError(try RobustnessRun.makeClassifier(settings: try settings(attacks: ["apgd-t"]), model: model, schedule: schedule,
                                                              classes: 3)) { XCTAssertTrue("\($0)".contains("apgd-t")) }
    }
}

/// Whether `error` is about `setting` (names it in its text).
func names(_ error: Error, _ setting: Setting) -> Bool {
    (error as? SettingNamingError)?.text.settings.contains(setting) ?? false
}
