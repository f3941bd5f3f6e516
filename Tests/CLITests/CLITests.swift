import Foundation
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

    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
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
}
