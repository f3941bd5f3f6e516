import Foundation
import TensorEngine
import XCTest

/// Runs the built `diffclass` binary as a user would.
final class CLITests: XCTestCase {
    var binary: URL {
        #if os(macOS)
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            return bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("diffclass")
        }
        #endif
        return Bundle.main.bundleURL.appendingPathComponent("diffclass")
    }

    func run(_ args: [String], environment: [String: String]? = nil) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    func testHelpAndUnknownCommand() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let help = try run(["help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.out.contains("usage: diffclass"))
        let bad = try run(["frobnicate"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.err.contains("unknown command 'frobnicate'"), bad.err)
    }

    /// Each command owns its usage and flags: `help CMD` and `CMD --help` print its usage (exit
    /// 0), `help` lists every command with its summary, and a flag another command takes a value
    /// for is unknown here.
    func testPerCommandHelpAndFlags() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let list = try run(["help"])
        XCTAssertEqual(list.status, 0)
        for command in ["bench", "train", "sample", "loss", "eval", "replay", "classify", "zeroshot", "bench-sd", "calibrate", "robust",
                        "merge", "report", "analyze", "selfcheck"] {
            XCTAssertTrue(list.out.contains("\n  \(command) "), "\(command) not listed: \(list.out)")
            let help = try run(["help", command]), flag = try run([command, "--help"])
            XCTAssertEqual(help.status, 0, command)
            XCTAssertEqual(flag.status, 0, command)
            XCTAssertTrue(help.out.hasPrefix("usage: diffclass \(command)"), help.out)
            XCTAssertEqual(help.out, flag.out, command)
            XCTAssertTrue(help.out.contains("--threads"), command)
        }
        XCTAssertTrue(try run(["help", "eval"]).out.contains("--leader-gap"))
        XCTAssertFalse(try run(["help", "train"]).out.contains("--leader-gap"))
        let unknown = try run(["help", "frobnicate"])
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.err.contains("unknown command 'frobnicate'"), unknown.err)
        // --gap takes a value for eval, not for train: there it is an unknown switch.
        let gap = try run(["train", "--dataset", "fashion-mnist", "--out", "/nonexistent/x", "--gap", "2"])
        XCTAssertEqual(gap.status, 2)
        XCTAssertTrue(gap.err.contains("unknown option --gap for 'train'"), gap.err)
    }

    /// OpenBLAS falls back to its generic "Prescott" kernels (or Haswell's on AVX-512 CPUs) on CPUs
    /// it does not know; diffclass then relaunches itself with the best family for the CPU, unless
    /// the user chose one.
    func testBLASKernelsAreUpgradedToTheBestFamilyOnly() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_CORETYPE"] = nil
        env[BLASCore.relaunchMarker] = nil
        func kernels(_ env: [String: String]) throws -> String {
            let r = try run(["selfcheck", "--threads", "1"], environment: env)
            XCTAssertEqual(r.status, 0, r.out + r.err)
            let line = r.out.split(separator: "\n").first { $0.hasPrefix("BLAS: ") } ?? ""
            return line.components(separatedBy: "kernels: ").dropFirst().first?.components(separatedBy: ",").first ?? ""
        }
        #if os(Linux)
        // What this process loaded under the same environment as the child's first start.
        let unchosen = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil
        if unchosen {
            let expected = BLASCore.relaunchCoreType(loaded: BLASCore.loaded, features: BLASCore.cpuFeatures, environment: env) ?? BLASCore.loaded
            XCTAssertEqual(try kernels(env).lowercased(), expected.lowercased())
        }
        env["OPENBLAS_CORETYPE"] = "Prescott"
        XCTAssertEqual(try kernels(env).lowercased(), "prescott")
        #endif
    }

    func testBadFlagsAreNamed() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let typo = try run(["selfcheck", "--thraeds", "2"])
        XCTAssertEqual(typo.status, 2)
        XCTAssertTrue(typo.err.contains("--thraeds"), typo.err)
        let threads = try run(["selfcheck", "--threads", "zero"])
        XCTAssertEqual(threads.status, 2)
        XCTAssertTrue(threads.err.contains("--threads expects an integer"), threads.err)
        let missing = try run(["train", "--dataset", "fashion-mnist"])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.err.contains("--out"), missing.err)
    }

    /// `bench --filter TEXT` runs only the kernel cases whose names contain TEXT, and names the
    /// flag when none does.
    func testBenchFilterSelectsKernelCases() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let r = try run(["bench", "--only", "kernels", "--filter", "groupnorm_silu", "--quick", "--no-torch",
                         "--min-seconds", "0", "--threads", "1"])
        XCTAssertEqual(r.status, 0, r.out + r.err)
        let cases = r.out.split(separator: "\n").filter { $0.hasPrefix("  ") && $0.contains(" ms") }
        XCTAssertFalse(cases.isEmpty, r.out)
        XCTAssertTrue(cases.allSatisfy { $0.contains("groupnorm_silu") }, r.out)
        let none = try run(["bench", "--only", "kernels", "--filter", "no-such-case", "--no-torch"])
        XCTAssertEqual(none.status, 2)
        XCTAssertTrue(none.err.contains("--filter: no benchmark case name contains 'no-such-case'"), none.err)
    }

    /// `bench --end-to-end` adds the end-to-end case (our leader-gap rule, timed per image, PyTorch
    /// skipped here) to the JSON report; with `--only kernels` it is a usage error naming the flag.
    func testBenchEndToEndCase() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let bad = try run(["bench", "--only", "kernels", "--end-to-end", "--no-torch"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.err.contains("--end-to-end"), bad.err)
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "models/fashion-mnist/diffusion_pytorch_model.safetensors")
                          && FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist"),
                          "the shipped model or Fashion-MNIST is absent")
        let r = try run(["bench", "--only", "classifier", "--end-to-end", "--no-torch", "--images", "1", "--end-to-end-images", "2",
                         "--rounds", "1", "--threads", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.err)
        let report = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any])
        let e2e = try XCTUnwrap(report["classifierEndToEnd"] as? [String: Any], r.out)
        XCTAssertEqual((e2e["images"] as? NSNumber)?.intValue, 2)
        XCTAssertEqual(e2e["torchStages"] as? String, "5:50,1:500")
        XCTAssertEqual(e2e["torchSkipped"] as? String, "--no-torch")
        let calls = try XCTUnwrap((e2e["callsPerImage"] as? NSNumber)?.doubleValue)
        XCTAssertTrue(calls >= 50 && calls <= 5000, "leader-gap calls per image \(calls)")
        XCTAssertTrue(((e2e["imagesPerSecond"] as? NSNumber)?.doubleValue ?? 0) > 0, r.out)
    }

    func testMissingOrMalformedModelFolder() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let none = try run(["sample", "--model", dir.path, "--out", dir.appendingPathComponent("g.png").path])
        XCTAssertNotEqual(none.status, 0)
        XCTAssertTrue(none.err.contains(dir.path) && none.err.contains("config.json"), none.err)
        // A config that parses but weights that are garbage.
        try Data("{\"_class_name\": \"UNet2DModel\", \"sample_size\": 8, \"in_channels\": 1, \"out_channels\": 1, \"block_out_channels\": [8, 16], \"down_block_types\": [\"DownBlock2D\", \"DownBlock2D\"], \"up_block_types\": [\"UpBlock2D\", \"UpBlock2D\"], \"norm_num_groups\": 4, \"num_class_embeds\": 3}".utf8)
            .write(to: dir.appendingPathComponent("config.json"))
        try Data([1, 2, 3]).write(to: dir.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        let garbage = try run(["sample", "--model", dir.path, "--out", dir.appendingPathComponent("g.png").path])
        XCTAssertNotEqual(garbage.status, 0)
        XCTAssertTrue(garbage.err.contains("diffusion_pytorch_model.safetensors"), garbage.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("g.png").path))
    }

    /// A model folder: the Diffusion tests' random class-conditional 8x8 U-Net (4 classes + null)
    /// and a default DDPM schedule.
    /// A temporary folder holding a tiny model (`tinyModelFolder`, with `class_names.txt` naming
    /// its classes a, b, c, d) and an image folder dataset of four classes (folders a, b, c, d) with
    /// one PNG each; the caller removes `dir`.
    func modelAndDataFolders() throws -> (dir: URL, model: URL, data: URL) {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        let model = try tinyModelFolder(in: dir)
        try Data("a\nb\nc\nd\n".utf8).write(to: model.appendingPathComponent("class_names.txt"))
        let data = dir.appendingPathComponent("data")
        for c in ["a", "b", "c", "d"] {
            try fm.createDirectory(at: data.appendingPathComponent(c), withIntermediateDirectories: true)
            try fm.copyItem(at: png, to: data.appendingPathComponent("\(c)/0.png"))
        }
        return (dir, model, data)
    }

    /// RUN/results.jsonl as JSON objects, without the given keys (timing and the like).
    func resultLines(_ run: String, dropping keys: [String]) throws -> [[String: Any]] {
        try String(contentsOfFile: run + "/results.jsonl", encoding: .utf8).split(separator: "\n").map {
            var r = try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            for k in keys { r[k] = nil }
            return r
        }
    }

    func tinyModelFolder(in dir: URL) throws -> URL {
        let fm = FileManager.default
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("DiffusionTests/Fixtures/unet_a")
        let model = dir.appendingPathComponent("model")
        try fm.createDirectory(at: model.appendingPathComponent("scheduler"), withIntermediateDirectories: true)
        for f in ["config.json", "diffusion_pytorch_model.safetensors"] {
            try fm.copyItem(at: fixtures.appendingPathComponent(f), to: model.appendingPathComponent(f))
        }
        try Data("{\"_class_name\": \"DDPMScheduler\", \"num_train_timesteps\": 1000, \"beta_schedule\": \"linear\"}".utf8)
            .write(to: model.appendingPathComponent("scheduler/scheduler_config.json"))
        return model
    }

    var png: URL { URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/gray8.png") }

    func testClassifyNamesBadFilesAndPrintsOneObjectPerGoodFile() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try tinyModelFolder(in: dir)
        let bad = dir.appendingPathComponent("bad.png")
        try Data("not an image".utf8).write(to: bad)
        let r = try run(["classify", "--model", model.path, "--n-timesteps", "4", "--json", "--labels", "w,x,y,z", png.path, bad.path])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssertTrue(r.err.contains(bad.path), r.err)
        let lines = r.out.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.out)
        let object = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        XCTAssertEqual(object["path"] as? String, png.path)
        XCTAssertEqual((object["probabilities"] as? [Double])?.count, 4)
        XCTAssertEqual(object["calls"] as? Int, 16)
        XCTAssertTrue(["w", "x", "y", "z"].contains(object["class_name"] as? String ?? ""))
    }

    /// classify --json on an EDM folder converted from a state dict in RDC's key layout, with fixed
    /// noise: mean_errors are RDC's loss from tools/make_rdc_fixtures.py (NVlabs/edm's code).
    func testClassifyEDMFolderWithNoiseEqualsTheReferenceLoss() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("EDMTests/Fixtures/rdc_cond")
        let noise = folder.appendingPathComponent("rdc.safetensors").path
        let expected: [String: [Double]] = [
            "paper": [1.0052636861801147, 1.0062741041183472, 0.99825119972229, 0.9778113961219788],
            "code": [0.796955943107605, 0.8012819290161133, 0.7916873097419739, 0.7774518728256226]]
        for (density, losses) in expected {
            let r = try run(["classify", "--model", folder.path, "--sigmas", "1e-4:3:12", "--sigma-density", density, "--noise", noise,
                             "--json", folder.appendingPathComponent("image0.png").path])
            XCTAssertEqual(r.status, 0, r.err)
            let object = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
            let errors = object["mean_errors"] as! [Double]
            XCTAssertEqual(errors.count, 4)
            for (a, b) in zip(errors, losses) { XCTAssertEqual(a, b, accuracy: 1e-4 * b) }
            XCTAssertEqual(object["calls"] as? Int, 48)
        }
        let bad = try run(["classify", "--model", folder.path, "--sigmas", "0:3:12", folder.appendingPathComponent("image0.png").path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.err.contains("--sigmas"), bad.err)
    }

    func testRobustWritesResumesAndRefuses() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? fm.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run").path
        let common = ["robust", "--model", model.path, "--data", data.path, "--split", "train", "--limit", "2", "--n-timesteps", "2",
                      "--attacks", "apgd-ce,square", "--iterations", "2", "--square-queries", "2", "--save-adv", "--out", out]
        let r = try run(common + ["--eps", "1/255"])
        XCTAssertEqual(r.status, 0, r.err)
        for f in ["settings.json", "results.jsonl", "summary.json"] {
            XCTAssertTrue(fm.fileExists(atPath: out + "/" + f), f)
        }
        let lines = try String(contentsOfFile: out + "/results.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        let again = try run(common + ["--eps", "1/255"])
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertEqual(try String(contentsOfFile: out + "/results.jsonl", encoding: .utf8).split(separator: "\n").count, 2)
        let changed = try run(common + ["--eps", "2/255"])
        XCTAssertEqual(changed.status, 2)
        XCTAssertTrue(changed.err.contains("eps"), changed.err)
        let bad = try run(common + ["--eps", "8/zz"])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.err.contains("--eps"), bad.err)
    }

    func testShardedRobustMergesAndReports() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? fm.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let common = ["robust", "--model", model.path, "--data", data.path, "--split", "train", "--limit", "3", "--n-timesteps", "2",
                      "--attacks", "apgd-ce", "--iterations", "1", "--eps", "1/255"]
        for shard in ["0/2", "1/2"] {
            let r = try run(common + ["--shard", shard, "--out", path("s\(shard.prefix(1))")])
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertTrue(r.out.contains("(shard \(shard))"), r.out)
        }
        XCTAssertEqual(try String(contentsOfFile: path("s0/results.jsonl"), encoding: .utf8).split(separator: "\n").count, 2)
        XCTAssertEqual(try String(contentsOfFile: path("s1/results.jsonl"), encoding: .utf8).split(separator: "\n").count, 1)
        let merged = try run(["merge", path("s0"), path("s1"), "--out", path("all")])
        XCTAssertEqual(merged.status, 0, merged.err)
        XCTAssertTrue(merged.out.contains("merged 3 images: clean"), merged.out)
        let report = try run(["report", path("all"), "--compare", path("s0")])
        XCTAssertEqual(report.status, 0, report.err)
        let html = try String(contentsOfFile: path("all/report.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("Robust accuracy against epsilon"))
        let badShard = try run(common + ["--shard", "2/2", "--out", path("x")])
        XCTAssertEqual(badShard.status, 2)
        XCTAssertTrue(badShard.err.contains("--shard"), badShard.err)
        let mixed = try run(["merge", path("s0"), path("s1"), "--out", path("all")])
        XCTAssertNotEqual(mixed.status, 0)
    }

    func testShardedEvalMergesAndCalibrates() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? fm.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let common = ["eval", "--model", model.path, "--data", data.path, "--n-timesteps", "3", "--split", "train"]
        for shard in ["0/2", "1/2"] {
            let r = try run(common + ["--shard", shard, "--out", path("s\(shard.prefix(1))")])
            XCTAssertEqual(r.status, 0, r.err)
        }
        let merged = try run(["merge", path("s0"), path("s1"), "--out", path("all")])
        XCTAssertEqual(merged.status, 0, merged.err)
        XCTAssertTrue(merged.out.contains("merged 4 images"), merged.out)
        let cal = try run(["calibrate", "--run", path("all"), "--out", path("cal.json")])
        XCTAssertEqual(cal.status, 0, cal.err)
        let fitted = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: path("cal.json")))) as! [String: Any]
        XCTAssertNotNil(fitted["tau"] as? Double)
        XCTAssertNotNil(fitted["ece_after"] as? Double)
        let withCal = try run(common + ["--calibration", path("cal.json"), "--limit", "1", "--out", path("c")])
        XCTAssertEqual(withCal.status, 0, withCal.err)
        let settings = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: path("c/settings.json")))) as! [String: Any]
        XCTAssertEqual(settings["tau"] as? Double, fitted["tau"] as? Double)
        let clash = try run(common + ["--calibration", path("cal.json"), "--loss", "l1", "--out", path("d")])
        XCTAssertEqual(clash.status, 2)
        XCTAssertTrue(clash.err.contains("cal.json") && clash.err.contains("--loss"), clash.err)
    }

    func testRecordedRunReplaysStrategiesExactly() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? fm.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        func lines(_ run: String) throws -> [[String: Any]] {
            try resultLines(path(run), dropping: ["seconds", "probe_errors", "probe_timesteps"])
        }
        // Batch size 1: each error is computed alone, so online and replayed errors are identical.
        let common = ["--model", model.path, "--data", data.path, "--split", "train", "--batch-size", "1", "--noise-by", "timestep"]
        let grid = try run(["eval"] + common + ["--n-timesteps", "8", "--save-errors", "--out", path("grid")])
        XCTAssertEqual(grid.status, 0, grid.err)
        let recorded = try String(contentsOfFile: path("grid") + "/results.jsonl", encoding: .utf8)
        XCTAssertTrue(recorded.contains("\"probe_errors\"") && recorded.contains("\"probe_timesteps\""))
        for method in [["--stages", "2:2,1:8"], ["--leader-gap", "--min-scores", "2", "--gap", "1", "--max-scores", "8"]] {
            let name = method[0].dropFirst(2)
            let online = try run(["eval"] + common + method + ["--out", path("online-\(name)")])
            XCTAssertEqual(online.status, 0, online.err)
            let replay = try run(["replay", "--run", path("grid"), "--out", path("replay-\(name)")] + method)
            XCTAssertEqual(replay.status, 0, replay.err)
            let a = try lines("online-\(name)"), b = try lines("replay-\(name)")
            XCTAssertEqual(a.count, 4)
            XCTAssertEqual(a.count, b.count)
            for (x, y) in zip(a, b) { XCTAssertEqual(x as NSDictionary, y as NSDictionary, "\(name)") }
        }
        // Not replayable: timesteps outside the recording, other loss, a run without --save-errors.
        let outside = try run(["replay", "--run", path("grid"), "--n-timesteps", "3", "--out", path("r1")])
        XCTAssertEqual(outside.status, 2)
        XCTAssertTrue(outside.err.contains("no error for class"), outside.err)
        let loss = try run(["replay", "--run", path("grid"), "--n-timesteps", "8", "--loss", "l1", "--out", path("r2")])
        XCTAssertEqual(loss.status, 2)
        XCTAssertTrue(loss.err.contains("--loss"), loss.err)
        let bare = try run(["replay", "--run", path("online-stages"), "--n-timesteps", "8", "--out", path("r3")])
        XCTAssertEqual(bare.status, 2)
        XCTAssertTrue(bare.err.contains("--save-errors"), bare.err)
    }

    /// `eval --reuse SRC`: a staged run's recorded errors reused by a grid and a leader-gap run
    /// give those runs' online results line for line (batch size 1), with fewer U-Net passes.
    func testEvalReusesRecordedErrors() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? fm.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        func lines(_ run: String) throws -> [[String: Any]] { try resultLines(path(run), dropping: ["seconds", "model_calls"]) }
        let common = ["--model", model.path, "--data", data.path, "--split", "train", "--batch-size", "1", "--noise-by", "timestep",
                      "--save-errors"]
        let staged = try run(["eval"] + common + ["--stages", "2:2,1:8", "--out", path("staged")])
        XCTAssertEqual(staged.status, 0, staged.err)
        for method in [["--n-timesteps", "8"], ["--leader-gap", "--min-scores", "2", "--gap", "1", "--max-scores", "8"]] {
            let name = method[0].dropFirst(2)
            let online = try run(["eval"] + common + method + ["--out", path("online-\(name)")])
            XCTAssertEqual(online.status, 0, online.err)
            let reused = try run(["eval"] + common + method + ["--reuse", path("staged"), "--out", path("reused-\(name)")])
            XCTAssertEqual(reused.status, 0, reused.err)
            let a = try lines("online-\(name)"), b = try lines("reused-\(name)")
            XCTAssertEqual(a.count, 4)
            XCTAssertEqual(a.count, b.count)
            for (x, y) in zip(a, b) { XCTAssertEqual(x as NSDictionary, y as NSDictionary, "\(name)") }
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("reused-\(name)") + "/summary.json"))) as! [String: Any]
            let calls = summary["mean_calls"] as! Double, modelCalls = summary["mean_model_calls"] as! Double
            XCTAssertLessThan(modelCalls, calls, "\(name)")
            XCTAssertEqual(summary["reused_from"] as? String, URL(fileURLWithPath: path("staged")).standardizedFileURL.path)
        }
        // Refused: without --noise-by timestep, another loss, a source without --save-errors.
        let byProbe = try run(["eval", "--model", model.path, "--data", data.path, "--split", "train", "--n-timesteps", "8",
                               "--reuse", path("staged"), "--out", path("r1")])
        XCTAssertEqual(byProbe.status, 2)
        XCTAssertTrue(byProbe.err.contains("--noise-by timestep"), byProbe.err)
        let loss = try run(["eval"] + common + ["--n-timesteps", "8", "--loss", "l1", "--reuse", path("staged"), "--out", path("r2")])
        XCTAssertEqual(loss.status, 2)
        XCTAssertTrue(loss.err.contains("--loss"), loss.err)
        let bare = try run(["eval", "--model", model.path, "--data", data.path, "--split", "train", "--noise-by", "timestep",
                            "--n-timesteps", "8", "--out", path("bare")])
        XCTAssertEqual(bare.status, 0, bare.err)
        let fromBare = try run(["eval"] + common + ["--n-timesteps", "8", "--reuse", path("bare"), "--out", path("r3")])
        XCTAssertEqual(fromBare.status, 2)
        XCTAssertTrue(fromBare.err.contains("--save-errors"), fromBare.err)
        XCTAssertFalse(fm.fileExists(atPath: path("r3") + "/results.jsonl"), "a refused run writes no results")
    }
}

extension CLITests {
    /// A model folder's calibration.json gives tau unless --tau or --calibration is given (and is
    /// skipped, saying so, when fitted for another loss); the header says where tau came from or
    /// that the run is uncalibrated; summary.json names the file and holds NLL, ECE and the
    /// confusion matrix of the recorded probabilities; the report says the same.
    func testModelFolderCalibrationIsTheDefault() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? FileManager.default.removeItem(at: dir) }
        let eval = ["eval", "--model", model.path, "--data", data.path, "--split", "train", "--n-timesteps", "2", "--threads", "1"]
        func summary(_ run: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("\(run)/summary.json"))) as! [String: Any]
        }
        func settings(_ run: String) throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("\(run)/settings.json"))) as! [String: Any]
        }
        // No calibration.json: uncalibrated, and said so.
        let plain = try run(eval + ["--out", dir.appendingPathComponent("plain").path])
        XCTAssertEqual(plain.status, 0, plain.err)
        XCTAssertTrue(plain.out.contains("tau 1: uncalibrated"), plain.out)
        XCTAssertTrue(plain.out.contains("1 thread ->"), plain.out)
        let s0 = try summary("plain")
        XCTAssertNil(s0["calibration"])
        let confusion = try XCTUnwrap(s0["confusion"] as? [[Int]])
        XCTAssertEqual(confusion.count, 4)
        XCTAssertEqual(confusion.map { $0.reduce(0, +) }, [1, 1, 1, 1], "one image per class")
        XCTAssertEqual(confusion.indices.map { confusion[$0][$0] }.reduce(0, +), s0["correct"] as? Int)
        let lines = try resultLines(dir.appendingPathComponent("plain").path, dropping: [])
        let nll = lines.map { l -> Double in -log((l["probabilities"] as! [Double])[l["label"] as! Int]) }.reduce(0, +) / 4
        XCTAssertEqual(try XCTUnwrap(s0["nll"] as? Double), nll, accuracy: 1e-9)
        XCTAssertNotNil(s0["ece"] as? Double)
        let plainReport = try run(["report", dir.appendingPathComponent("plain").path])
        XCTAssertEqual(plainReport.status, 0, plainReport.err)
        let plainHTML = try String(contentsOf: dir.appendingPathComponent("plain/report.html"), encoding: .utf8)
        XCTAssertTrue(plainHTML.contains("Uncalibrated (tau 1)"))
        XCTAssertTrue(plainHTML.contains(String(format: "NLL %.4f", nll)), "the report shows the summary's NLL")

        // calibration.json in the model folder: used by default.
        let cal = "{\"accuracy\": 1, \"bins\": 15, \"ece_after\": 0, \"ece_before\": 0, \"loss\": \"l2\", \"n\": 1, \"nll_after\": 1, "
            + "\"nll_before\": 1, \"tau\": 123.25, \"weighting\": \"uniform\"}"
        let calFile = model.appendingPathComponent("calibration.json")
        try Data(cal.utf8).write(to: calFile)
        let calibrated = try run(eval + ["--out", dir.appendingPathComponent("cal").path])
        XCTAssertEqual(calibrated.status, 0, calibrated.err)
        XCTAssertTrue(calibrated.out.contains("tau 123.25 (calibrated: \(calFile.path))"), calibrated.out)
        XCTAssertEqual(try settings("cal")["tau"] as? Double, 123.25)
        XCTAssertEqual(try summary("cal")["calibration"] as? String, calFile.path)
        XCTAssertEqual(try run(["report", dir.appendingPathComponent("cal").path]).status, 0)
        let calHTML = try String(contentsOf: dir.appendingPathComponent("cal/report.html"), encoding: .utf8)
        XCTAssertTrue(calHTML.contains("Probabilities calibrated: tau 123.25 from \(calFile.path)"), "calibration named in the report")
        XCTAssertTrue(calHTML.contains("<th>calibration</th><td>\(calFile.path)</td>"))
        XCTAssertTrue(calHTML.contains("<th>threads</th><td>1</td>"))

        // --tau overrides it; a file fitted for another loss is not used, and the header says why.
        let given = try run(eval + ["--tau", "2", "--out", dir.appendingPathComponent("tau").path])
        XCTAssertEqual(given.status, 0, given.err)
        XCTAssertTrue(given.out.contains("tau 2 (--tau)"), given.out)
        XCTAssertEqual(try settings("tau")["tau"] as? Double, 2)
        let l1 = try run(eval + ["--loss", "l1", "--out", dir.appendingPathComponent("l1").path])
        XCTAssertEqual(l1.status, 0, l1.err)
        XCTAssertTrue(l1.out.contains("uncalibrated") && l1.out.contains("\(calFile.path) not used"), l1.out)
        XCTAssertEqual(try settings("l1")["tau"] as? Double, 1)
    }
}

extension CLITests {
    /// Unknown flags are named before missing ones; --limit's error names no Int.max; JSON
    /// writes `/` plainly; --version answers.
    func testFlagErrorsAndJSONSlashes() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let typo = try run(["eval", "--modle", "m", "--out", "/nonexistent/x"])
        XCTAssertEqual(typo.status, 2)
        XCTAssertTrue(typo.err.contains("unknown option --modle for 'eval'"), typo.err)
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run").path
        let limit = try run(["eval", "--model", model.path, "--data", data.path, "--limit", "0", "--out", out])
        XCTAssertEqual(limit.status, 2)
        XCTAssertTrue(limit.err.contains("--limit expects a positive integer, got '0'"), limit.err)
        XCTAssertFalse(limit.err.contains("\(Int.max)"), limit.err)
        let ok = try run(["eval", "--model", model.path, "--data", data.path, "--split", "train", "--n-timesteps", "2", "--threads", "1", "--out", out])
        XCTAssertEqual(ok.status, 0, ok.err)
        XCTAssertTrue(ok.out.contains("4/4  100%  acc") && ok.out.contains("ETA"), "progress lines in a log: \(ok.out)")
        for file in ["settings.json", "summary.json", "results.jsonl"] {
            let text = try String(contentsOfFile: out + "/" + file, encoding: .utf8)
            XCTAssertFalse(text.contains("\\/"), "\(file): \(text)")
        }
        XCTAssertTrue(try String(contentsOfFile: out + "/settings.json", encoding: .utf8).contains("\"model\" : \"\(model.path)\""))
        let version = try run(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.out.hasPrefix("diffclass "), version.out)
    }

    /// diffusers folders as users have them: an fp16 variant is read with --variant fp16 (and
    /// named when missing), PyTorch .bin weights get the conversion command.
    func testWeightVariantsAndPickleWeights() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fm = FileManager.default
        let plain = model.appendingPathComponent("diffusion_pytorch_model.safetensors")
        try fm.moveItem(at: plain, to: model.appendingPathComponent("diffusion_pytorch_model.fp16.safetensors"))
        let eval = ["eval", "--model", model.path, "--data", data.path, "--split", "train", "--n-timesteps", "1", "--limit", "1", "--threads", "1"]
        let missing = try run(eval + ["--out", dir.appendingPathComponent("a").path])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.err.contains("--variant fp16") && missing.err.contains("diffusion_pytorch_model.fp16.safetensors"), missing.err)
        let variant = try run(eval + ["--variant", "fp16", "--out", dir.appendingPathComponent("b").path])
        XCTAssertEqual(variant.status, 0, variant.err)
        let wrong = try run(eval + ["--variant", "bf16", "--out", dir.appendingPathComponent("c").path])
        XCTAssertEqual(wrong.status, 2)
        XCTAssertTrue(wrong.err.contains("no --variant bf16") && wrong.err.contains("fp16"), wrong.err)
        try fm.removeItem(at: model.appendingPathComponent("diffusion_pytorch_model.fp16.safetensors"))
        try Data([0x80, 0x02]).write(to: model.appendingPathComponent("diffusion_pytorch_model.bin"))
        let pickle = try run(eval + ["--out", dir.appendingPathComponent("d").path])
        XCTAssertEqual(pickle.status, 2)
        XCTAssertTrue(pickle.err.contains("diffusion_pytorch_model.bin") && pickle.err.contains("from safetensors.torch import save_file")
                      && pickle.err.contains(plain.path), pickle.err)
    }
}
