import Foundation

/// Student's t distribution and the regularized incomplete beta function it rests on, written
/// out here (no statistics library): I_x(a, b) by the continued fraction of Numerical Recipes
/// (`betacf`, modified Lentz, relative accuracy ~1e-14), with ln Gamma from libm's `lgamma`.
public enum StudentT {
    /// I_x(a, b) = B(x; a, b) / B(a, b) for a, b > 0, x in [0, 1].
    public static func regularizedIncompleteBeta(x: Double, a: Double, b: Double) -> Double {
        precondition(a > 0 && b > 0, "regularizedIncompleteBeta: a = \(a), b = \(b) must be positive")
        if x.isNaN { return .nan }
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let lnFront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x)
        let front = exp(lnFront)
        // The continued fraction converges fast for x < (a + 1) / (a + b + 2); use symmetry otherwise.
        if x < (a + 1) / (a + b + 2) {
            return front * continuedFraction(x: x, a: a, b: b) / a
        }
        return 1 - front * continuedFraction(x: 1 - x, a: b, b: a) / b
    }

    static func continuedFraction(x: Double, a: Double, b: Double) -> Double {
        let tiny = 1e-300, eps = 1e-15
        let qab = a + b, qap = a + 1, qam = a - 1
        var c = 1.0, d = 1 - qab * x / qap
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...10_000 {
            let m = Double(m), m2 = 2 * m
            var aa = m * (b - m) * x / ((qam + m2) * (a + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < eps { break }
        }
        return h
    }

    /// P(T <= t) for T ~ Student t with `df` > 0 degrees of freedom.
    public static func cdf(_ t: Double, df: Double) -> Double {
        precondition(df > 0, "StudentT.cdf: df = \(df) must be positive")
        if t.isNaN { return .nan }
        if t.isInfinite { return t > 0 ? 1 : 0 }
        // P(|T| > |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2).
        let tail = 0.5 * regularizedIncompleteBeta(x: df / (df + t * t), a: df / 2, b: 0.5)
        return t > 0 ? 1 - tail : tail
    }

    /// The one-sided upper p-value P(T >= t).
    public static func upperTail(_ t: Double, df: Double) -> Double {
        if t.isNaN { return .nan }
        if t.isInfinite { return t > 0 ? 0 : 1 }
        let tail = 0.5 * regularizedIncompleteBeta(x: df / (df + t * t), a: df / 2, b: 0.5)
        return t > 0 ? tail : 1 - tail
    }

    /// One-sided paired t-test of H1: mean(d) > 0 against H0: mean(d) = 0, with d the paired
    /// differences (n >= 2): t = mean / (sd / sqrt(n)), sd with n - 1 in the denominator,
    /// df = n - 1; returns (t, p) with p = P(T >= t) (scipy's `ttest_rel(..., alternative='greater')`).
    /// When every difference is equal (sd = 0): p = 0 if mean > 0, 1 if mean < 0, 0.5 if all zero.
    public static func pairedTest(_ d: [Double]) -> (t: Double, p: Double) {
        let n = Double(d.count)
        precondition(d.count >= 2, "StudentT.pairedTest: need at least 2 differences, got \(d.count)")
        let mean = d.reduce(0, +) / n
        let variance = d.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
        if variance <= 0 {
            if mean > 0 { return (.infinity, 0) }
            if mean < 0 { return (-.infinity, 1) }
            return (0, 0.5)
        }
        let t = mean / (variance / n).squareRoot()
        return (t, upperTail(t, df: n - 1))
    }
}
