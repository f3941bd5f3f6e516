import Datasets
import DiffusionClassifier
@testable import Robustness
import RobustnessTestSupport
import TensorEngine
import XCTest

/// Trains SmallCNN once on 3,000 Fashion-MNIST training images and attacks 200 test images.
/// Numbers are printed (grep "[robustness]") for the report.
final class SmallCNNAttackTests: XCTestCase {
    struct Fixture {
        let model: SmallCNN
        let images: Tensor   // [200, 1, 28, 28] in [0, 1]
        let labels: [Int]
        let cleanAccuracy: Double
    }

    nonisolated(unsafe) static var cached: Fixture??

    static func fixture() throws -> Fixture {
        #if DEBUG
        // Training takes minutes in a debug build; `make test` runs release.
        if ProcessInfo.processInfo.environment["ROBUSTNESS_DEBUG_CNN"] == nil {
            throw XCTSkip("SmallCNN attack tests run in release builds (set ROBUSTNESS_DEBUG_CNN=1 to force)")
        }
        #endif
        if let c = cached { if let f = c { return f }; throw XCTSkip("Fashion-MNIST not available") }
        guard FileManager.default.fileExists(atPath: FashionMNIST.debianDirectory.path),
              let train = try? FashionMNIST.load(split: .train), let test = try? FashionMNIST.load(split: .test) else {
            cached = .some(nil)
            throw XCTSkip("Fashion-MNIST not found at \(FashionMNIST.debianDirectory.path)")
        }
        var g = RandomGenerator(seed: 2024)
        let trainIdx = Array(g.permutation(train.count).prefix(3000))
        let xTrain = (train.images(trainIdx) + 1) * 0.5
        let model = SmallCNN(generator: &g)
        let start = Date()
        let losses = trainClassifier(model, forward: { model($0) }, images: xTrain, labels: trainIdx.map { train.labels[$0] },
                                     epochs: 20, batchSize: 50, learningRate: 3e-3, generator: &g)
        let testIdx = Array(0..<200)
        let xTest = (test.images(testIdx) + 1) * 0.5
        let labels = testIdx.map { test.labels[$0] }
        let acc = accuracy(of: model, images: xTest, labels: labels)
        print("[robustness] SmallCNN trained in \(String(format: "%.1f", Date().timeIntervalSince(start))) s, epoch losses \(losses), clean accuracy \(acc)")
        let f = Fixture(model: model, images: xTest, labels: labels, cleanAccuracy: acc)
        cached = .some(f)
        return f
    }

    func robustAccuracy(_ attack: Attack, _ f: Fixture, count: Int = 200, seed: UInt64 = 7) -> (Double, AttackResult, Tensor) {
        let x = f.images.sliced(axis: 0, 0..<count)
        let y = Array(f.labels.prefix(count))
        var g = RandomGenerator(seed: seed)
        let start = Date()
        let r = attack.run(on: f.model, images: x, labels: y, generator: &g)
        let acc = accuracy(of: f.model, images: r.adversarial, labels: y)
        print("[robustness] \(attack.name) \(attack.budget) on \(count): accuracy \(acc), forward \(r.forwardCalls), backward \(r.backwardCalls), queries \(r.queries), \(String(format: "%.1f", Date().timeIntervalSince(start))) s")
        return (acc, r, x)
    }

    func testCleanAccuracy() throws {
        let f = try Self.fixture()
        XCTAssertGreaterThan(f.cleanAccuracy, 0.7)
    }

    func testAPGDCEDrivesAccuracyNearZero() throws {
        let f = try Self.fixture()
        let budget = PerturbationBudget.linf(0.1)
        let (acc, r, x) = robustAccuracy(APGDAttack(budget: budget, loss: .crossEntropy, iterations: 20), f)
        XCTAssertLessThan(acc, 0.1)
        let a = r.adversarial.scalars, c = x.scalars
        for i in a.indices {
            XCTAssert(a[i] >= 0 && a[i] <= 1 && a[i] >= c[i] - budget.epsilon && a[i] <= c[i] + budget.epsilon)
        }
        // Success flags are exactly the misclassified adversarial images.
        let pred = predictions(f.model(r.adversarial).scalars, classCount: 10)
        XCTAssertEqual(r.success, zip(pred, f.labels).map { $0 != $1 })
    }

    func testAPGDDLRAndTargeted() throws {
        let f = try Self.fixture()
        let (dlr, _, _) = robustAccuracy(APGDAttack(budget: .linf(0.1), loss: .dlr, iterations: 20), f, count: 100)
        XCTAssertLessThan(dlr, 0.15)
        let (t, _, _) = robustAccuracy(APGDAttack(budget: .linf(0.1), loss: .targetedDLR, iterations: 10, targetCount: 3), f, count: 50)
        XCTAssertLessThan(t, 0.15)
    }

    func testSquareComesNearWhiteBox() throws {
        let f = try Self.fixture()
        let (white, _, _) = robustAccuracy(APGDAttack(budget: .linf(0.1), iterations: 20), f, count: 100)
        let (square, r, x) = robustAccuracy(SquareAttack(budget: .linf(0.1), queries: 300), f, count: 100)
        XCTAssertLessThan(square, white + 0.25)
        XCTAssertLessThanOrEqual(r.queries, 100 * 300)
        let a = r.adversarial.scalars, c = x.scalars
        for i in a.indices { XCTAssert(a[i] >= 0 && a[i] <= 1 && abs(a[i] - c[i]) <= 0.1 + 1e-7) }
    }

    func testPGDL2() throws {
        let f = try Self.fixture()
        let budget = PerturbationBudget.l2(2.0)
        let (acc, r, x) = robustAccuracy(PGDAttack(budget: budget, iterations: 20, stepSize: 0.25), f, count: 100)
        XCTAssertLessThan(acc, 0.3)
        XCTAssertLessThan(acc, f.cleanAccuracy - 0.3)
        for d in budget.distances(r.adversarial.scalars, clean: x.scalars, imageSize: 784) {
            XCTAssertLessThanOrEqual(d, budget.epsilon * (1 + 1e-5))
        }
        let (apgd, _, _) = robustAccuracy(APGDAttack(budget: budget, iterations: 20), f, count: 100)
        XCTAssertLessThan(apgd, 0.3)
    }

    func testSameSeedSameAdversarialExamples() throws {
        let f = try Self.fixture()
        let attack = APGDAttack(budget: .linf(0.05), iterations: 5)
        let (_, r1, _) = robustAccuracy(attack, f, count: 20, seed: 99)
        let (_, r2, _) = robustAccuracy(attack, f, count: 20, seed: 99)
        XCTAssertEqual(r1.adversarial.scalars, r2.adversarial.scalars)
    }

    func testRobustnessEvaluationOnCNN() throws {
        let f = try Self.fixture()
        let eval = RobustnessEvaluation(attacks: [APGDAttack(budget: .linf(0.03), iterations: 10),
                                                  APGDAttack(budget: .linf(0.03), loss: .targetedDLR, iterations: 10, targetCount: 3),
                                                  SquareAttack(budget: .linf(0.03), queries: 100)], batchSize: 50)
        let x = f.images.sliced(axis: 0, 0..<100)
        let report = eval.run(on: f.model, images: x, labels: Array(f.labels.prefix(100)), generator: RandomGenerator(seed: 1))
        print("[robustness] evaluation linf 0.03 on 100: clean \(report.cleanAccuracy), robust \(report.robustAccuracy), " +
              report.attacks.map { "\($0.name): broke \($0.broken) of \($0.attacked), after \($0.robustAccuracyAfter)" }.joined(separator: "; "))
        XCTAssertLessThanOrEqual(report.robustAccuracy, report.cleanAccuracy)
        XCTAssertEqual(report.robustAccuracy, accuracy(of: f.model, images: report.adversarial, labels: Array(f.labels.prefix(100))), accuracy: 1e-12)
    }
}
