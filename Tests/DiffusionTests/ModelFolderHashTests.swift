@testable import Diffusion
import Foundation
import XCTest

final class ModelFolderHashTests: XCTestCase {
    func folder() throws -> URL {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("hash-\(UUID().uuidString)")
        try fm.createDirectory(at: dir.appendingPathComponent("scheduler"), withIntermediateDirectories: true)
        try Data("{\"a\": 1}".utf8).write(to: dir.appendingPathComponent("config.json"))
        try Data((0..<1000).map { UInt8($0 % 251) }).write(to: dir.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        try Data("{\"num_train_timesteps\": 1000}".utf8).write(to: dir.appendingPathComponent("scheduler/scheduler_config.json"))
        return dir
    }

    func testHashChangesWithWeightsAndConfigsButNotWithClassNamesOrCheckpoints() throws {
        let dir = try folder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let h = try ModelFolderHash.of(dir)
        XCTAssertTrue(h.hasPrefix("h64:") && h.count == 20, h)
        XCTAssertEqual(try ModelFolderHash.of(dir), h)
        XCTAssertEqual(try ModelFolderHash.files(in: dir), ["config.json", "diffusion_pytorch_model.safetensors", "scheduler/scheduler_config.json"])

        // Not hashed: class names, calibration, READMEs, images, a training checkpoint.
        for (name, text) in [("class_names.txt", "a\nb\n"), ("calibration.json", "{}"), ("README.md", "x"), ("samples.png", "x")] {
            try Data(text.utf8).write(to: dir.appendingPathComponent(name))
        }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("checkpoint"), withIntermediateDirectories: true)
        try Data("x".utf8).write(to: dir.appendingPathComponent("checkpoint/model.safetensors"))
        XCTAssertEqual(try ModelFolderHash.of(dir), h)

        // One byte of the weights, or of the scheduler config, changes it.
        var weights = try Data(contentsOf: dir.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        weights[517] ^= 1
        try weights.write(to: dir.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        let h2 = try ModelFolderHash.of(dir)
        XCTAssertNotEqual(h2, h)
        try Data("{\"num_train_timesteps\": 999}".utf8).write(to: dir.appendingPathComponent("scheduler/scheduler_config.json"))
        XCTAssertNotEqual(try ModelFolderHash.of(dir), h2)
        // A file moved to another name changes it too (names are hashed).
        XCTAssertThrowsError(try ModelFolderHash.of(dir.appendingPathComponent("missing")))
    }

    func testStreamHashDoesNotDependOnHowTheBytesAreSplitAndIsStable() {
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<1337).map { _ in UInt8.random(in: 0...255, using: &g) }
        var whole = ModelFolderHash.StreamHash()
        whole.add(Data(bytes))
        for cuts in [[1, 31, 32, 33], [7, 100, 101, 1000], [64, 65]] {
            var parts = ModelFolderHash.StreamHash()
            var start = 0
            for c in cuts + [bytes.count] { parts.add(Data(bytes[start..<c])); start = c }
            XCTAssertEqual(parts.finish(), whole.finish(), "\(cuts)")
        }
        // The value is part of run folders' format: pinned.
        var fixed = ModelFolderHash.StreamHash()
        fixed.add(Data((0..<100).map { UInt8($0) }))
        XCTAssertEqual(String(format: "%016llx", fixed.finish()), "91abc748fc59a973")
    }
}
