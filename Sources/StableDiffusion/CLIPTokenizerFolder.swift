import Diffusion
import Foundation

extension CLIPTokenizer {
    /// Where the tokenizer files live: `folder` itself when it has `vocab.json`, else `folder/tokenizer`
    /// (a diffusers pipeline folder).
    public static func directory(_ folder: URL) -> URL {
        FileManager.default.fileExists(atPath: folder.appendingPathComponent("vocab.json").path)
            ? folder : folder.appendingPathComponent("tokenizer")
    }

    /// Loads `vocab.json` and `merges.txt`, and when present `tokenizer_config.json` and then
    /// `special_tokens_map.json` for the special tokens and `model_max_length` (a token given in
    /// `tokenizer_config.json` wins, as in transformers 4.4x). As the slow tokenizer does, the first
    /// line of `merges.txt` (`#version: ...`) is skipped and at most 48,894 merges are read.
    /// Errors name the file.
    public static func load(from folder: URL) throws -> CLIPTokenizer {
        let dir = directory(folder)
        let vocabURL = dir.appendingPathComponent("vocab.json"), mergesURL = dir.appendingPathComponent("merges.txt")
        let vocabulary = try parseVocabulary(try readFile(vocabURL), file: vocabURL.path)
        let merges = try parseMerges(try readFile(mergesURL), file: mergesURL.path)
        var tokens = ["bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>"]
        var maxLength = 77
        let mapURL = dir.appendingPathComponent("special_tokens_map.json")
        let configURL = dir.appendingPathComponent("tokenizer_config.json")
        for url in [mapURL, configURL] where FileManager.default.fileExists(atPath: url.path) {
            try applySpecialTokens(try readFile(url), file: url.path, readsMaxLength: url == configURL,
                                   tokens: &tokens, maxLength: &maxLength)
        }
        do {
            return try CLIPTokenizer(vocabulary: vocabulary, merges: merges, padToken: tokens["pad_token"]!,
                                     bosToken: tokens["bos_token"]!, eosToken: tokens["eos_token"]!,
                                     unknownToken: tokens["unk_token"]!, modelMaxLength: maxLength)
        } catch let e as ConfigError {
            throw ConfigError(file: e.file == "tokenizer_config.json" ? configURL.path : vocabURL.path, e.message)
        }
    }

    /// A `vocab.json`'s contents: a JSON object of token -> integer id. Errors name `file`.
    public static func parseVocabulary(_ data: Data, file: String) throws -> [String: Int] {
        do {
            guard let v = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ConfigError(file: file, "not a JSON object of token -> id")
            }
            return try v.mapValues { value -> Int in
                guard let n = value as? NSNumber, let i = Int(exactly: n.doubleValue) else {
                    throw ConfigError(file: file, "id \(value) is not an integer")
                }
                return i
            }
        } catch let e as ConfigError { throw e } catch {
            throw ConfigError(file: file, "not valid JSON: \(error.localizedDescription)")
        }
    }

    /// A `merges.txt`'s contents, in rank order: the first line (`#version: ...`) is skipped and
    /// at most 48,894 merges are read, as the slow tokenizer does. Errors name `file` and the line.
    public static func parseMerges(_ data: Data, file: String) throws -> [(String, String)] {
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: file, "not UTF-8 text")
        }
        var lines = text.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: "\n")
        lines = Array(lines.dropFirst().prefix(49152 - 256 - 2))
        var merges: [(String, String)] = []
        for (n, line) in lines.enumerated() {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2 else {
                throw ConfigError(file: file, "line \(n + 2) is not two symbols separated by a space: '\(line)'")
            }
            merges.append((String(parts[0]), String(parts[1])))
        }
        return merges
    }

    /// Reads the special tokens (`bos_token`, `eos_token`, `unk_token`, `pad_token`: a string or
    /// `{"content": ...}`) of a `special_tokens_map.json` or `tokenizer_config.json` into `tokens`,
    /// and with `readsMaxLength` its `model_max_length` (below 1e9; larger is transformers'
    /// "no limit" sentinel) into `maxLength`. Errors name `file`.
    public static func applySpecialTokens(_ data: Data, file: String, readsMaxLength: Bool,
                                          tokens: inout [String: String], maxLength: inout Int) throws {
        guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ConfigError(file: file, "not a JSON object")
        }
        for key in tokens.keys {
            if let s = obj[key] as? String { tokens[key] = s }
            else if let d = obj[key] as? [String: Any], let s = d["content"] as? String { tokens[key] = s }
        }
        if readsMaxLength, let m = obj["model_max_length"] as? NSNumber {
            // transformers writes a huge sentinel when there is no limit.
            if m.doubleValue < 1e9 { maxLength = m.intValue }
        }
    }

    static func readFile(_ url: URL) throws -> Data {
        guard FileManager.default.fileExists(atPath: url.path) else { throw ConfigError(file: url.path, "missing") }
        do { return try Data(contentsOf: url) } catch {
            throw ConfigError(file: url.path, "cannot read: \(error.localizedDescription)")
        }
    }
}
