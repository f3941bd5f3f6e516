import Foundation
import XCTest

/// Run folders are safe against a second writer, damaged lines, kills and a full disk.
extension CLITests {
    func evalArgs(_ model: URL, _ data: URL, out: URL, timesteps: Int = 6, extra: [String] = []) -> [String] {
        ["eval", "--model", model.path, "--data", data.path, "--split", "train", "--n-timesteps", "\(timesteps)", "--out", out.path,
         "--threads", "1"] + extra
    }

    /// results.jsonl with every `"seconds":VALUE` replaced by `"seconds":0`.
    func untimed(_ run: URL) throws -> String {
        let text = try String(contentsOf: run.appendingPathComponent("results.jsonl"), encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: "\"seconds\":[-+0-9.eE]+")
        return pattern.stringByReplacingMatches(in: text, range: NSRange(text.startIndex..., in: text), withTemplate: "\"seconds\":0")
    }

    /// A folder another process holds (flock(1) on RUN/.lock, as diffclass takes it; -o so that killing flock releases it) is refused
    /// with that process's pid, before anything is written; once it is gone the run proceeds.
    func testASecondWriterOfARunFolderIsRefusedWithTheHoldersPid() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        try XCTSkipUnless(FileManager.default.fileExists(atPath: "/usr/bin/flock"), "no flock(1)")
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "echo $$ > '\(out.path)/.lock'; exec /usr/bin/flock -o '\(out.path)/.lock' sleep 10"]
        try holder.run()
        defer { if holder.isRunning { kill(holder.processIdentifier, SIGKILL) }; holder.waitUntilExit() }
        // Wait until the holder has the lock (flock(1) -n fails meanwhile).
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            let probe = Process()
            probe.executableURL = URL(fileURLWithPath: "/usr/bin/flock")
            probe.arguments = ["-n", out.path + "/.lock", "true"]
            try probe.run()
            probe.waitUntilExit()
            if probe.terminationStatus != 0 { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let refused = try run(evalArgs(model, data, out: out))
        XCTAssertEqual(refused.status, 2, refused.err)
        XCTAssertTrue(refused.err.contains("another process (pid \(holder.processIdentifier)) is writing this run folder"), refused.err)
        XCTAssertTrue(refused.err.contains("--out"), refused.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("settings.json").path))
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        let ran = try run(evalArgs(model, data, out: out))
        XCTAssertEqual(ran.status, 0, ran.err)
    }

    /// A damaged line in the middle of results.jsonl, or a line repeating an index, is an error
    /// naming the file and the line, on resume and on every reader; never dropped or counted twice.
    func testDamagedOrRepeatedResultLinesAreNamedByLineNumber() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run")
        XCTAssertEqual(try run(evalArgs(model, data, out: out)).status, 0)
        let results = out.appendingPathComponent("results.jsonl")
        let lines = try String(contentsOf: results, encoding: .utf8).split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 4)

        try (([lines[0], String(lines[1].prefix(30)) + "\u{0}\u{0}"] + lines[2...]).joined(separator: "\n") + "\n").write(to: results, atomically: true, encoding: .utf8)
        for args in [evalArgs(model, data, out: out), ["calibrate", "--run", out.path, "--out", dir.appendingPathComponent("cal.json").path], ["report", out.path]] {
            let r = try run(args)
            XCTAssertEqual(r.status, 2, "\(args[0]): \(r.err)")
            XCTAssertTrue(r.err.contains("\(results.path): line 2 is not a result record"), "\(args[0]): \(r.err)")
        }

        try ((lines + [lines[1]]).joined(separator: "\n") + "\n").write(to: results, atomically: true, encoding: .utf8)
        let r = try run(evalArgs(model, data, out: out))
        XCTAssertEqual(r.status, 2, r.err)
        XCTAssertTrue(r.err.contains("\(results.path): line 5 repeats item 1 of line 2"), r.err)
    }

    /// Resume checks each finished line against the data: an index outside it, a label that is not
    /// the data's, another image's path, or errors for another class count are errors naming the
    /// file and the item, before anything is appended.
    func testResumeRefusesLinesThatDoNotFitTheData() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run")
        XCTAssertEqual(try run(evalArgs(model, data, out: out, extra: ["--limit", "2"])).status, 0)
        let results = out.appendingPathComponent("results.jsonl")
        let original = try String(contentsOf: results, encoding: .utf8)
        let lines = original.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.count, 2)
        func edited(_ line: String, _ key: String, _ value: Any) throws -> String {
            var o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            o[key] = value
            return String(data: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), encoding: .utf8)!
        }
        for (line, expected) in [
            (try edited(lines[1], "index", -1), "the line of item -1 has index -1, outside the data's 0..<4"),
            (try edited(lines[1], "index", 9), "the line of item 9 has index 9, outside the data's 0..<4"),
            (try edited(lines[1], "label", 3), "the line of item 1 has label 3, but image 1 of the data has label 1"),
            (try edited(lines[1], "path", "elsewhere.png"), "the line of item 1 is of elsewhere.png, but image 1 of the data is"),
            (try edited(lines[1], "mean_errors", [0.1, 0.2]), "the line of item 1 has errors for 2 classes, the run has 4"),
        ] {
            try (lines[0] + "\n" + line + "\n").write(to: results, atomically: true, encoding: .utf8)
            let r = try run(evalArgs(model, data, out: out))
            XCTAssertEqual(r.status, 2, r.err)
            XCTAssertTrue(r.err.contains("\(results.path): \(expected)"), r.err)
            XCTAssertEqual(try String(contentsOf: results, encoding: .utf8), lines[0] + "\n" + line + "\n", "nothing appended")
        }
        // The original lines resume to the full run.
        try original.write(to: results, atomically: true, encoding: .utf8)
        let resumed = try run(evalArgs(model, data, out: out))
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertEqual(try resultLines(out.path, dropping: []).count, 4)
    }

    /// settings.json holds the model folder's content hash: weights or configs changed in place
    /// are refused on resume, naming model_hash; a folder made before the hash resumes as before.
    func testAModelChangedInPlaceIsNotMixedIntoAResumedRun() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("run")
        XCTAssertEqual(try run(evalArgs(model, data, out: out, extra: ["--limit", "2"])).status, 0)
        let settingsURL = out.appendingPathComponent("settings.json")
        let settings = try JSONSerialization.jsonObject(with: Data(contentsOf: settingsURL)) as! [String: Any]
        XCTAssertTrue((settings["model_hash"] as? String)?.hasPrefix("h64:") == true, "\(settings)")

        let scheduler = model.appendingPathComponent("scheduler/scheduler_config.json")
        let original = try Data(contentsOf: scheduler)
        try Data("{\"_class_name\": \"DDPMScheduler\", \"num_train_timesteps\": 1000, \"beta_schedule\": \"linear\", \"beta_end\": 0.021}".utf8)
            .write(to: scheduler)
        let refused = try run(evalArgs(model, data, out: out))
        XCTAssertEqual(refused.status, 2, refused.err)
        XCTAssertTrue(refused.err.contains("model_hash: h64:"), refused.err)
        XCTAssertEqual(try resultLines(out.path, dropping: []).count, 2)

        // A folder without model_hash (made before it was recorded) resumes.
        try original.write(to: scheduler)
        var old = settings
        old["model_hash"] = nil
        try JSONSerialization.data(withJSONObject: old, options: [.prettyPrinted, .sortedKeys]).write(to: settingsURL)
        let resumed = try run(evalArgs(model, data, out: out))
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertEqual(try resultLines(out.path, dropping: []).count, 4)
    }

    /// SIGKILL at random moments (seeded), then resume: the folder ends equal to an uninterrupted
    /// run's, byte for byte apart from timing, with every item exactly once.
    func testKilledAtRandomMomentsAndResumedEqualsAnUninterruptedRun() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? FileManager.default.removeItem(at: dir) }
        let extra = ["--batch-size", "4"]
        let reference = dir.appendingPathComponent("reference")
        let start = Date()
        XCTAssertEqual(try run(evalArgs(model, data, out: reference, timesteps: 40, extra: extra)).status, 0)
        let duration = Date().timeIntervalSince(start)

        let out = dir.appendingPathComponent("killed")
        var state: UInt64 = 20_261_203
        var kills = 0
        for _ in 0..<10 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let fraction = Double(state >> 11) / Double(1 << 53)
            let p = Process()
            p.executableURL = binary
            p.arguments = evalArgs(model, data, out: out, timesteps: 40, extra: extra)
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            Thread.sleep(forTimeInterval: fraction * duration)
            if p.isRunning { kill(p.processIdentifier, SIGKILL); kills += 1 }
            p.waitUntilExit()
        }
        let finish = try run(evalArgs(model, data, out: out, timesteps: 40, extra: extra))
        XCTAssertEqual(finish.status, 0, finish.err)
        XCTAssertGreaterThan(kills, 0)
        XCTAssertEqual(try untimed(out), try untimed(reference))
    }

    /// A file-size limit (`ulimit -f`, as a full disk) stops the run with an error naming
    /// results.jsonl; the folder then resumes to the uninterrupted run's results.
    func testAFullDiskGivesANamedErrorAndAResumableFolder() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? FileManager.default.removeItem(at: dir) }
        let reference = dir.appendingPathComponent("reference")
        XCTAssertEqual(try run(evalArgs(model, data, out: reference)).status, 0)
        let size = try Data(contentsOf: reference.appendingPathComponent("results.jsonl")).count
        let settings = try Data(contentsOf: reference.appendingPathComponent("settings.json")).count
        XCTAssertLessThan(settings, 1024)

        let out = dir.appendingPathComponent("run")
        // bash's ulimit -f counts 1024-byte blocks: settings.json fits, results.jsonl does not.
        let blocks = max(1, size / 2 / 1024)
        XCTAssertGreaterThan(size, blocks * 1024)
        let args = evalArgs(model, data, out: out).map { "'\($0)'" }.joined(separator: " ")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", "ulimit -f \(blocks); exec '\(binary.path)' \(args)"]
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 2, text)
        XCTAssertTrue(text.contains("results.jsonl: cannot append the line of item"), text)
        XCTAssertTrue(text.contains("File too large"), text)
        let resumed = try run(evalArgs(model, data, out: out))
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertEqual(try untimed(out), try untimed(reference))
    }
}
