/// A dataset file or folder that cannot be used (names it).
public struct DatasetError: Error, CustomStringConvertible {
    public let file: String
    public let message: String
    public init(file: String, _ message: String) { self.file = file; self.message = message }
    public var description: String { "\(file): \(message)" }
}
