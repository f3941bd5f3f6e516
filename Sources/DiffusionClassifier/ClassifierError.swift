/// An error of the classifier: a bad setting (named by its flag or file) or an unusable input.
public struct ClassifierError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ message: String) { description = message }
}
