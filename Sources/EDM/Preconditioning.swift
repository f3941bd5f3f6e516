import Foundation

/// The four scalings of a preconditioned denoiser D(x; s) = c_skip x + c_out F(c_in x; c_noise),
/// one per batch item.
public struct PreconditioningCoefficients: Equatable, Sendable {
    public var cSkip: [Float], cOut: [Float], cIn: [Float], cNoise: [Float]
}

/// EDM's `EDMPrecond` (Karras et al. 2022, Table 1): c_skip = sd^2 / (s^2 + sd^2),
/// c_out = s sd / sqrt(s^2 + sd^2), c_in = 1 / sqrt(sd^2 + s^2), c_noise = ln(s) / 4, computed in
/// float32 in EDM's order. `sigmaMin` / `sigmaMax` are the supported range (EDM: 0 and infinity),
/// kept for samplers; they do not enter D.
public struct EDMPrecond: Equatable, Sendable {
    public var sigmaMin: Double = 0
    public var sigmaMax: Double = .infinity
    public var sigmaData: Double = 0.5
    public init(sigmaMin: Double = 0, sigmaMax: Double = .infinity, sigmaData: Double = 0.5) {
        self.sigmaMin = sigmaMin; self.sigmaMax = sigmaMax; self.sigmaData = sigmaData
    }

    public func coefficients(_ sigma: Float) -> (cSkip: Float, cOut: Float, cIn: Float, cNoise: Float) {
        let sd = Float(sigmaData), sd2 = Float(sigmaData * sigmaData)
        let s2 = sigma * sigma
        return (sd2 / (s2 + sd2), sigma * sd / (s2 + sd2).squareRoot(), 1 / (sd2 + s2).squareRoot(), Foundation.log(sigma) / 4)
    }
}

/// EDM's `VPPrecond` (the variance-preserving SDE of Song et al. 2021): c_skip = 1, c_out = -s,
/// c_in = 1 / sqrt(s^2 + 1), c_noise = (M - 1) sigma^-1(s), with
/// sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1) and
/// sigma^-1(s) = (sqrt(beta_min^2 + 2 beta_d ln(1 + s^2)) - beta_min) / beta_d, all in float32 in
/// EDM's order. sigma_min = sigma(epsilon_t), sigma_max = sigma(1).
public struct VPPrecond: Equatable, Sendable {
    public var betaD: Double = 19.9
    public var betaMin: Double = 0.1
    public var M: Int = 1000
    public var epsilonT: Double = 1e-5
    public init(betaD: Double = 19.9, betaMin: Double = 0.1, M: Int = 1000, epsilonT: Double = 1e-5) {
        self.betaD = betaD; self.betaMin = betaMin; self.M = M; self.epsilonT = epsilonT
    }

    /// sigma(t), float32 as EDM's `VPPrecond.sigma`.
    public func sigma(_ t: Float) -> Float {
        (Foundation.exp(Float(0.5 * betaD) * (t * t) + Float(betaMin) * t) - 1).squareRoot()
    }

    /// sigma^-1(s), float32 as EDM's `VPPrecond.sigma_inv`.
    public func sigmaInverse(_ sigma: Float) -> Float {
        ((Float(betaMin * betaMin) + Float(2 * betaD) * Foundation.log(1 + sigma * sigma)).squareRoot() - Float(betaMin)) / Float(betaD)
    }

    public var sigmaMin: Double { Double(sigma(Float(epsilonT))) }
    public var sigmaMax: Double { Double(sigma(1)) }

    public func coefficients(_ sigma: Float) -> (cSkip: Float, cOut: Float, cIn: Float, cNoise: Float) {
        (1, -sigma, 1 / (sigma * sigma + 1).squareRoot(), Float(M - 1) * sigmaInverse(sigma))
    }
}

/// EDM's `VEPrecond` (the variance-exploding SDE): c_skip = 1, c_out = s, c_in = 1,
/// c_noise = ln(s / 2). `sigmaMin` / `sigmaMax` (EDM: 0.02, 100) are kept for samplers.
public struct VEPrecond: Equatable, Sendable {
    public var sigmaMin: Double = 0.02
    public var sigmaMax: Double = 100
    public init(sigmaMin: Double = 0.02, sigmaMax: Double = 100) { self.sigmaMin = sigmaMin; self.sigmaMax = sigmaMax }

    public func coefficients(_ sigma: Float) -> (cSkip: Float, cOut: Float, cIn: Float, cNoise: Float) {
        (1, sigma, 1, Foundation.log(0.5 * sigma))
    }
}

/// One of EDM's three preconditionings (`precond` in config.json: "edm", "vp", "ve").
public enum Preconditioning: Equatable, Sendable {
    case edm(EDMPrecond)
    case vp(VPPrecond)
    case ve(VEPrecond)

    public var sigmaMin: Double {
        switch self { case .edm(let p): return p.sigmaMin; case .vp(let p): return p.sigmaMin; case .ve(let p): return p.sigmaMin }
    }

    public var sigmaMax: Double {
        switch self { case .edm(let p): return p.sigmaMax; case .vp(let p): return p.sigmaMax; case .ve(let p): return p.sigmaMax }
    }

    /// EDM's `sigma_data` for "edm"; nil for the others (they do not have one).
    public var sigmaData: Double? {
        if case .edm(let p) = self { return p.sigmaData }
        return nil
    }

    public func coefficients(_ sigma: [Float]) -> PreconditioningCoefficients {
        var c = PreconditioningCoefficients(cSkip: [], cOut: [], cIn: [], cNoise: [])
        for s in sigma {
            let v: (cSkip: Float, cOut: Float, cIn: Float, cNoise: Float)
            switch self {
            case .edm(let p): v = p.coefficients(s)
            case .vp(let p): v = p.coefficients(s)
            case .ve(let p): v = p.coefficients(s)
            }
            c.cSkip.append(v.cSkip); c.cOut.append(v.cOut); c.cIn.append(v.cIn); c.cNoise.append(v.cNoise)
        }
        return c
    }
}
