import DiffusionClassifier
import Foundation
import XCTest

final class StatisticsTests: XCTestCase {
    func testStudentTAgainstSciPy() {
        // scipy.stats.t.sf(t, df)
        let cases: [(Double, Double, Double)] = [(2.0, 10, 0.03669401738537018), (1.0, 1, 0.25), (2.0, 2, 0.09175170953613698),
                                                 (-1.5, 7, 0.911350756505015), (5.0, 30, 1.16483427335039e-05),
                                                 (0.3, 200, 0.382244365094664)]
        for (t, df, p) in cases {
            XCTAssertEqual(StudentT.upperTail(t, df: df), p, accuracy: 1e-10 + 1e-8 * p, "t=\(t) df=\(df)")
            XCTAssertEqual(StudentT.cdf(t, df: df), 1 - p, accuracy: 1e-10, "t=\(t) df=\(df)")
        }
        // scipy.special.betainc(a, b, x)
        XCTAssertEqual(StudentT.regularizedIncompleteBeta(x: 0.5, a: 2, b: 3), 0.6875, accuracy: 1e-13)
        XCTAssertEqual(StudentT.regularizedIncompleteBeta(x: 0.9, a: 0.5, b: 5), 0.9999974294103009, accuracy: 1e-12)
        XCTAssertEqual(StudentT.regularizedIncompleteBeta(x: 0.3, a: 10, b: 0.5), 1.2205229279531696e-06, accuracy: 1e-15)
    }

    func testPairedTestAgainstSciPy() {
        // scipy.stats.ttest_rel(a, b, alternative='greater')
        let a = [1.0, 2.5, 0.3, 4.1, 2.2, -0.7, 3.3], b = [0.5, 1.0, 0.9, 2.0, 1.0, -0.2, 1.1]
        let r = StudentT.pairedTest(zip(a, b).map { $0 - $1 })
        XCTAssertEqual(r.t, 2.101657967262688, accuracy: 1e-12)
        XCTAssertEqual(r.p, 0.04014671082323629, accuracy: 1e-12)
        XCTAssertEqual(StudentT.pairedTest([1, 1, 1]).p, 0)
        XCTAssertEqual(StudentT.pairedTest([-1, -1]).p, 1)
    }

    func testPosterior() {
        let p = Posterior.probabilities(meanErrors: [1.0, 2.0, nil, 1.0], tau: 2)
        XCTAssertEqual(p[2], 0)
        XCTAssertEqual(p[0], p[3])
        XCTAssertEqual(p[1] / p[0], Foundation.exp(-2), accuracy: 1e-12)
        XCTAssertEqual(p.reduce(0, +), 1, accuracy: 1e-12)
        XCTAssertEqual(Posterior.probabilities(meanErrors: [1000, 1001], tau: 1)[0], 1 / (1 + Foundation.exp(-1)), accuracy: 1e-12)
    }
}
