import Foundation
import NeuralNetworks

/// Helpers shared by the fuzz targets. A target exports
///
///     @_cdecl("LLVMFuzzerTestOneInput")
///     public func fuzz(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt
///
/// and feeds the input to one parser. Thrown errors are the expected outcome for bad input;
/// a crash, trap, sanitizer report, leak, hang or failed `FuzzCheck.require` is a finding.
public enum FuzzInput {
    /// The input as `Data` (a copy: parsers may keep it).
    public static func data(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> Data {
        guard let bytes, count > 0 else { return Data() }
        return Data(bytes: bytes, count: count)
    }

    /// Splits `data` at each 0x00 byte into at most `parts` pieces (the last keeps the rest), so
    /// one input can hold several files (vocab.json, merges.txt, ...). Missing pieces are empty.
    public static func split(_ data: Data, parts: Int) -> [Data] {
        var pieces: [Data] = []
        var rest = data[...]
        while pieces.count < parts - 1, let zero = rest.firstIndex(of: 0) {
            pieces.append(Data(rest[rest.startIndex..<zero]))
            rest = rest[(zero + 1)...]
        }
        pieces.append(Data(rest))
        while pieces.count < parts { pieces.append(Data()) }
        return pieces
    }
}

/// Oracles beyond "does not crash".
public enum FuzzCheck {
    /// Stops the process (a libFuzzer finding, with the input saved) when `condition` is false.
    public static func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
        if !condition() {
            FileHandle.standardError.write(Data("fuzz check failed: \(message())\n".utf8))
            abort()
        }
    }

    /// Bad input must be answered by an error that names the file (or flag) it came from.
    public static func errorNames(_ error: Error, _ name: String) {
        let text = "\(error)"
        require(text.contains(name), "the error does not name '\(name)': \(text)")
    }

    /// Bad input must be answered by a `SettingNamingError` whose message names one of `settings`
    /// (the CLI renders it as that flag).
    public static func errorNames(_ error: Error, settings: [Setting]) {
        guard let e = error as? SettingNamingError else {
            require(false, "the error names no setting: \(error)")
            return
        }
        require(e.text.settings.contains(where: settings.contains),
                "the error does not name \(settings.map(\.name).joined(separator: " or ")): \(e.text)")
    }
}
