import Foundation
import XCTest
import StableDiffusion
import Diffusion

func fixtureURL(_ name: String) -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").appendingPathComponent(name)
}

/// Token ids against transformers' slow CLIPTokenizer (no ftfy) on the folders written by
/// tools/make_sd_fixtures.py (the first 400 real CLIP merges).
final class CLIPTokenizerTests: XCTestCase {
    struct Expected: Decodable {
        struct Prompt: Decodable { let text: String; let tokens: [String]; let ids: [Int]; let padded: [Int] }
        let pad_token: String, pad_id: Int, model_max_length: Int, prompts: [Prompt]
    }

    func checkPrompts(_ name: String) throws {
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixtureURL(name).appendingPathComponent("tokenizer_expected.json")))
        let tok = try CLIPTokenizer.load(from: fixtureURL(name))
        XCTAssertEqual(tok.padTokenId, expected.pad_id)
        XCTAssertEqual(tok.modelMaxLength, expected.model_max_length)
        for p in expected.prompts {
            XCTAssertEqual(tok.tokenize(p.text), p.tokens, "\(name): \(p.text.debugDescription)")
            XCTAssertEqual(tok.encode(p.text), p.ids, "\(name): \(p.text.debugDescription)")
            XCTAssertEqual(tok.encodePadded(p.text), p.padded, "\(name): \(p.text.debugDescription)")
        }
    }

    func testSD1TokenizerMatchesTransformers() throws { try checkPrompts("sd1") }

    func testSD2TokenizerPadsWithExclamationMark() throws {
        try checkPrompts("sd2")
        let tok = try CLIPTokenizer.load(from: fixtureURL("sd2").appendingPathComponent("tokenizer"))
        XCTAssertEqual(tok.padTokenId, tok.vocabulary["!"])
        XCTAssertEqual(tok.encodePadded("cat").last, tok.vocabulary["!"])
    }

    /// The prompts with the full CLIP vocabulary (49,408 tokens), which is not committed:
    /// tools/make_sd_fixtures.py leaves it in /tmp/clip_full_tokenizer; set CLIP_FULL_TOKENIZER to
    /// that folder to run this check, skipped otherwise.
    func testFullVocabularyWhenAvailable() throws {
        struct Row: Decodable { let text: String; let ids: [Int] }
        let rows = try JSONDecoder().decode([Row].self, from: Data(contentsOf: fixtureURL("full_vocab_ids.json")))
        XCTAssertEqual(rows.first?.ids.first, 49406)
        guard let path = ProcessInfo.processInfo.environment["CLIP_FULL_TOKENIZER"] else {
            throw XCTSkip("CLIP_FULL_TOKENIZER is not set")
        }
        let tok = try CLIPTokenizer.load(from: URL(fileURLWithPath: path))
        XCTAssertEqual(tok.vocabulary.count, 49408)
        for row in rows { XCTAssertEqual(tok.encode(row.text), row.ids, row.text.debugDescription) }
    }

    func testMissingAndMalformedFilesAreNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        XCTAssertThrowsError(try CLIPTokenizer.load(from: dir)) { XCTAssertTrue("\($0)".contains("vocab.json"), "\($0)") }
        let src = fixtureURL("sd1").appendingPathComponent("tokenizer")
        try FileManager.default.copyItem(at: src.appendingPathComponent("vocab.json"), to: dir.appendingPathComponent("vocab.json"))
        XCTAssertThrowsError(try CLIPTokenizer.load(from: dir)) { XCTAssertTrue("\($0)".contains("merges.txt") && "\($0)".contains("missing"), "\($0)") }
        try "#version: 0.2\na b c\n".write(to: dir.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer.load(from: dir)) { XCTAssertTrue("\($0)".contains("merges.txt") && "\($0)".contains("line 2"), "\($0)") }
        try "#version: 0.2\na b\n".write(to: dir.appendingPathComponent("merges.txt"), atomically: true, encoding: .utf8)
        try "{not json".write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer.load(from: dir)) { XCTAssertTrue("\($0)".contains("tokenizer_config.json"), "\($0)") }
        try "[1, 2]".write(to: dir.appendingPathComponent("vocab.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CLIPTokenizer.load(from: dir)) { XCTAssertTrue("\($0)".contains("vocab.json"), "\($0)") }
    }

    func testTruncationKeepsEndToken() throws {
        let tok = try CLIPTokenizer.load(from: fixtureURL("sd1"))
        let ids = tok.encodePadded(Array(repeating: "cat", count: 200).joined(separator: " "))
        XCTAssertEqual(ids.count, 77)
        XCTAssertEqual(ids.first, tok.bosTokenId)
        XCTAssertEqual(ids.last, tok.eosTokenId)
        XCTAssertEqual(tok.encodePadded("", length: 5), [tok.bosTokenId, tok.eosTokenId, tok.padTokenId, tok.padTokenId, tok.padTokenId])
    }
}
