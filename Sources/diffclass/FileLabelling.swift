import DiffusionClassifier
import Foundation

/// Labels image files one by one for `classify` and `zeroshot`: `describe` returns the line to
/// print for a file. A file that fails is reported on stderr (named) and skipped, so no partial
/// output is printed for it; returns the exit status (1 when any file failed).
func labelFiles(_ files: [String], _ describe: (String) throws -> String) -> Int32 {
    var failed = 0
    for file in files {
        let text: String
        do { text = try describe(file) } catch {
            let message = cliMessage(error)
            let named = message.contains(URL(fileURLWithPath: file).path) ? message : "\(file): \(message)"
            FileHandle.standardError.write(Data("diffclass: \(named)\n".utf8))
            failed += 1
            continue
        }
        print(text)
        fflush(stdout)
    }
    if failed > 0 { FileHandle.standardError.write(Data("diffclass: \(failed) of \(files.count) files failed\n".utf8)) }
    return failed > 0 ? 1 : 0
}

/// "FILE: LABEL  (top-k labels with probabilities; N calls)".
func rankedLine(file: String, names: [String], _ c: Classification, top: Int) -> String {
    let ranked = c.probabilities.indices.sorted { (c.probabilities[$0], -$0) > (c.probabilities[$1], -$1) }.prefix(top)
    let probs = ranked.map { String(format: "%@ %.3f", names[$0], c.probabilities[$0]) }.joined(separator: ", ")
    return "\(file): \(names[c.prediction])  (\(probs); \(c.calls) calls)"
}
