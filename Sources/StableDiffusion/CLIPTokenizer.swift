import Diffusion
import Foundation

/// CLIP's byte-level BPE tokenizer. Matches transformers' slow `CLIPTokenizer` without ftfy (see
/// `CLIPPreTokenizer` for the text clean-up and what differs): words from the CLIP pattern, UTF-8
/// bytes mapped by `bytes_to_unicode`, BPE by merge rank with `</w>` on each word's last symbol,
/// unknown symbols to the unknown token, then `<|startoftext|> ... <|endoftext|>`, truncation and
/// padding to `modelMaxLength` (77) with the pad token (SD 1.x: `<|endoftext|>`, SD 2.x: `!`).
/// The special tokens' exact strings inside the text (start, end, pad, unknown) are split out
/// first and kept whole, as transformers' added-token split does: with SD 2.x's pad token `!`,
/// every `!` becomes id of `!` without `</w>` (the real SD 2 behaviour). Lower-cased forms such as
/// `<|ENDOFTEXT|>` match the pattern's special alternatives and map to the same ids.
public final class CLIPTokenizer: @unchecked Sendable {
    public let vocabulary: [String: Int]
    public let modelMaxLength: Int
    public let bosTokenId: Int
    public let eosTokenId: Int
    public let padTokenId: Int
    public let unknownTokenId: Int
    let ranks: [String: Int]  // "first second" -> rank
    let specialTokens: [[Unicode.Scalar]]  // longest first
    private var cache: [String: [String]] = [:]
    private let lock = NSLock()

    /// `merges` in rank order; the special tokens must be in `vocabulary`.
    public init(vocabulary: [String: Int], merges: [(String, String)], padToken: String = "<|endoftext|>",
                bosToken: String = "<|startoftext|>", eosToken: String = "<|endoftext|>",
                unknownToken: String = "<|endoftext|>", modelMaxLength: Int = 77) throws {
        func id(_ t: String, _ role: String) throws -> Int {
            guard let i = vocabulary[t] else { throw ConfigError(file: "vocab.json", "no id for the \(role) token '\(t)'") }
            return i
        }
        guard modelMaxLength >= 2 else {
            throw ConfigError(file: "tokenizer_config.json", "model_max_length \(modelMaxLength) leaves no room for the start and end tokens (at least 2)")
        }
        self.vocabulary = vocabulary
        bosTokenId = try id(bosToken, "start")
        eosTokenId = try id(eosToken, "end")
        padTokenId = try id(padToken, "pad")
        unknownTokenId = try id(unknownToken, "unknown")
        self.modelMaxLength = modelMaxLength
        var r: [String: Int] = [:]
        for (i, m) in merges.enumerated() where r[m.0 + " " + m.1] == nil { r[m.0 + " " + m.1] = i }
        ranks = r
        specialTokens = Set([bosToken, eosToken, padToken, unknownToken]).map { Array($0.unicodeScalars) }
            .filter { !$0.isEmpty }.sorted { $0.count > $1.count }
    }

    /// The token strings of `text` (no start/end tokens), as `tokenizer.tokenize(text)`.
    public func tokenize(_ text: String) -> [String] {
        var out: [String] = []
        let s = Array(text.unicodeScalars)
        var start = 0, i = 0
        while i < s.count {
            if let t = specialTokens.first(where: { i + $0.count <= s.count && Array(s[i..<(i + $0.count)]) == $0 }) {
                out += tokenizeSegment(String(String.UnicodeScalarView(s[start..<i])))
                out.append(String(String.UnicodeScalarView(t)))
                i += t.count
                start = i
            } else {
                i += 1
            }
        }
        return out + tokenizeSegment(String(String.UnicodeScalarView(s[start..<s.count])))
    }

    /// Text without special tokens: clean-up, words, byte encoding, BPE.
    func tokenizeSegment(_ text: String) -> [String] {
        var out: [String] = []
        for word in CLIPPreTokenizer.words(text) {
            if word == "<|startoftext|>" || word == "<|endoftext|>" { out.append(word); continue }
            out += bpe(CLIPByteEncoder.symbols(word))
        }
        return out
    }

    /// Start token, the text's ids, end token; no truncation (`tokenizer(text).input_ids`).
    public func encode(_ text: String) -> [Int] {
        [bosTokenId] + tokenize(text).map { vocabulary[$0] ?? unknownTokenId } + [eosTokenId]
    }

    /// Truncated and padded to `length` (default `modelMaxLength`), keeping the end token, as
    /// `tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids`.
    public func encodePadded(_ text: String, length: Int? = nil) -> [Int] {
        let n = length ?? modelMaxLength
        precondition(n >= 2, "CLIPTokenizer: length \(n) leaves no room for the start and end tokens")
        let body = tokenize(text).prefix(n - 2).map { vocabulary[$0] ?? unknownTokenId }
        let ids = [bosTokenId] + body + [eosTokenId]
        return ids + Array(repeating: padTokenId, count: n - ids.count)
    }

    /// BPE of one word's byte symbols; the last symbol carries `</w>`. Results are cached per word.
    func bpe(_ symbols: [String]) -> [String] {
        guard !symbols.isEmpty else { return [] }
        let key = symbols.joined()
        lock.lock()
        if let hit = cache[key] { lock.unlock(); return hit }
        lock.unlock()
        var word = symbols
        word[word.count - 1] += "</w>"
        while word.count > 1 {
            var best: (rank: Int, at: Int)? = nil
            for i in 0..<(word.count - 1) {
                if let r = ranks[word[i] + " " + word[i + 1]], r < (best?.rank ?? Int.max) { best = (r, i) }
            }
            guard let b = best else { break }
            let first = word[b.at], second = word[b.at + 1]
            var merged: [String] = []
            merged.reserveCapacity(word.count)
            var i = 0
            while i < word.count {
                if i < word.count - 1, word[i] == first, word[i + 1] == second {
                    merged.append(first + second); i += 2
                } else {
                    merged.append(word[i]); i += 1
                }
            }
            word = merged
        }
        lock.lock()
        cache[key] = word
        lock.unlock()
        return word
    }
}
