/// Interval arithmetic for symbolic shapes: what is known of a run-time int (a scalar, or a dim).
extension ShapeRules {
    /// The closed range `lo...hi` a run-time int lies in; nil ends are unbounded. An exactly known
    /// value has `lo == hi`. Arithmetic is sound: the result contains every possible outcome
    /// (an overflowing end becomes unbounded).
    public struct Bounds: Hashable, Sendable, CustomStringConvertible {
        public var lo: Int?
        public var hi: Int?

        @inline(__always)
        public init(_ lo: Int?, _ hi: Int?) {
            self.lo = lo
            self.hi = hi
        }

        @inline(__always)
        public static func exactly(_ n: Int) -> Bounds { Bounds(n, n) }
        public static let unknown = Bounds(nil, nil)

        /// The sizes a dimension can take.
        @inline(__always)
        public init(_ d: Dim) {
            switch d {
            case .fixed(let n): self.init(n, n)
            case .dynamic(let lo, let hi): self.init(lo, hi)
            }
        }

        @inline(__always)
        public var exact: Int? {
            if let lo, lo == hi { return lo }
            return nil
        }

        public func contains(_ n: Int) -> Bool { (lo.map { n >= $0 } ?? true) && (hi.map { n <= $0 } ?? true) }
        /// True if some value lies in both.
        public func overlaps(_ o: Bounds) -> Bool {
            if let a = lo, let b = o.hi, a > b { return false }
            if let a = o.lo, let b = hi, a > b { return false }
            return true
        }

        /// As a dimension: sizes are never negative, so the range is clipped at 0.
        public var dim: Dim {
            let l = Swift.max(lo ?? 0, 0)
            guard let hi else { return .dynamic(min: l, max: nil) }
            let h = Swift.max(hi, l)
            return h == l ? .fixed(l) : .dynamic(min: l, max: h)
        }

        public var description: String {
            if let e = exact { return String(e) }
            return "\(lo.map(String.init) ?? "-inf")...\(hi.map(String.init) ?? "inf")"
        }

        // MARK: arithmetic

        @inline(__always)
        static func add(_ a: Int?, _ b: Int?) -> Int? {
            guard let a, let b else { return nil }
            let (r, o) = a.addingReportingOverflow(b)
            return o ? nil : r
        }

        @inline(__always)
        static func mul(_ a: Int?, _ b: Int?) -> Int? {
            guard let a, let b else { return nil }
            let (r, o) = a.multipliedReportingOverflow(by: b)
            return o ? nil : r
        }

        static func negate(_ a: Int?) -> Int? {
            guard let a, a != .min else { return nil }
            return -a
        }

        public static func + (a: Bounds, b: Bounds) -> Bounds { Bounds(add(a.lo, b.lo), add(a.hi, b.hi)) }
        public static prefix func - (a: Bounds) -> Bounds { Bounds(negate(a.hi), negate(a.lo)) }
        public static func - (a: Bounds, b: Bounds) -> Bounds { a + (-b) }

        public static func * (a: Bounds, b: Bounds) -> Bounds {
            if let x = a.exact, let y = b.exact { return mul(x, y).map(Bounds.exactly) ?? .unknown }
            if let al = a.lo, al >= 0, let bl = b.lo, bl >= 0 {
                // Both non-negative: the product grows with both (an unbounded end stays unbounded,
                // unless the other factor is exactly 0).
                if a.hi == 0 || b.hi == 0 { return .exactly(0) }
                return Bounds(mul(al, bl), mul(a.hi, b.hi))
            }
            guard let al = a.lo, let ah = a.hi, let bl = b.lo, let bh = b.hi else { return .unknown }
            let corners = [mul(al, bl), mul(al, bh), mul(ah, bl), mul(ah, bh)]
            guard corners.allSatisfy({ $0 != nil }) else { return .unknown }
            let cs = corners.map { $0! }
            return Bounds(cs.min(), cs.max())
        }

        /// Python floor division.
        @inline(__always)
        public static func floorDiv(_ a: Int, _ b: Int) -> Int {
            let q = a / b
            return (a % b != 0) && ((a < 0) != (b < 0)) ? q - 1 : q
        }

        /// `⌊self / b⌋` (Python `//`); unknown unless the divisor is known and not 0.
        public func floorDivided(by b: Bounds) -> Bounds {
            if let x = exact, let y = b.exact, y != 0 {
                if x == .min && y == -1 { return .exactly(.min) }
                return .exactly(Bounds.floorDiv(x, y))
            }
            guard let c = b.exact, c != 0, c != -1 else { return .unknown }
            let l = lo.map { Bounds.floorDiv($0, c) }, h = hi.map { Bounds.floorDiv($0, c) }
            return c > 0 ? Bounds(l, h) : Bounds(h, l)
        }

        /// Python `%` (the sign of the divisor).
        public func remainder(_ b: Bounds) -> Bounds {
            if let x = exact, let y = b.exact, y != 0 {
                if y == -1 { return .exactly(0) }
                let r = x % y
                return .exactly(r != 0 && ((r < 0) != (y < 0)) ? r + y : r)
            }
            guard let c = b.exact, c != 0 else { return .unknown }
            if c > 0 {
                if let l = lo, l >= 0, let h = hi, h < c { return self }
                return Bounds(0, c - 1)
            }
            return Bounds(c + 1, 0)
        }

        public static func minimum(_ a: Bounds, _ b: Bounds) -> Bounds {
            let lo: Int? = (a.lo != nil && b.lo != nil) ? Swift.min(a.lo!, b.lo!) : nil
            let hi: Int? = a.hi == nil ? b.hi : (b.hi == nil ? a.hi : Swift.min(a.hi!, b.hi!))
            return Bounds(lo, hi)
        }

        public static func maximum(_ a: Bounds, _ b: Bounds) -> Bounds { -minimum(-a, -b) }

        /// The smallest range holding both (for a value that is one or the other).
        public func hull(_ o: Bounds) -> Bounds {
            Bounds((lo != nil && o.lo != nil) ? Swift.min(lo!, o.lo!) : nil,
                   (hi != nil && o.hi != nil) ? Swift.max(hi!, o.hi!) : nil)
        }

        /// The values in both, or nil if none is.
        public func intersection(_ o: Bounds) -> Bounds? {
            guard overlaps(o) else { return nil }
            let l: Int? = lo == nil ? o.lo : (o.lo == nil ? lo : Swift.max(lo!, o.lo!))
            let h: Int? = hi == nil ? o.hi : (o.hi == nil ? hi : Swift.min(hi!, o.hi!))
            return Bounds(l, h)
        }
    }
}

// MARK: - Dimensions

extension ShapeRules {
    /// The element count of a shape.
    static func count(_ shape: [Dim]) -> Bounds {
        var lo = 1, hi: Int? = 1
        for d in shape {
            switch d {
            case .fixed(let n):
                lo = lo.multipliedReportingOverflow(by: n).overflow ? Int.max : lo * n
                hi = Bounds.mul(hi, n)
            case .dynamic(let l, let h):
                lo = lo.multipliedReportingOverflow(by: l).overflow ? Int.max : lo * l
                hi = h == 0 ? 0 : Bounds.mul(hi, h)
            }
        }
        if hi == 0 { return .exactly(0) }
        return Bounds(lo, hi)
    }

    /// True if the dim can have size `n`.
    @inline(__always)
    static func canBe(_ d: Dim, _ n: Int) -> Bool {
        switch d {
        case .fixed(let k): return k == n
        case .dynamic(let lo, let hi): return n >= lo && (hi.map { n <= $0 } ?? true)
        }
    }

    /// A dim both `a` and `b` describe (they must be equal at run time), or nil if they cannot be.
    static func meet(_ a: Dim, _ b: Dim) -> Dim? {
        if case .fixed(let x) = a, case .fixed(let y) = b { return x == y ? a : nil }
        guard let r = Bounds(a).intersection(Bounds(b)) else { return nil }
        return r.dim
    }

    /// A dim that is `a` or `b` (control-flow joins).
    static func hull(_ a: Dim, _ b: Dim) -> Dim {
        if a == b { return a }
        return Bounds(a).hull(Bounds(b)).dim
    }

    /// NumPy broadcasting of one dim pair; nil if they cannot broadcast.
    @inline(__always)
    static func broadcastDim(_ a: Dim, _ b: Dim) -> Dim? {
        if case .fixed(let x) = a, case .fixed(let y) = b {
            if x == y || y == 1 { return a }
            if x == 1 { return b }
            return nil
        }
        if a == .fixed(1) { return b }
        if b == .fixed(1) { return a }
        let a1 = canBe(a, 1), b1 = canBe(b, 1)
        switch (a1, b1) {
        case (false, false): return meet(a, b)
        case (true, false):
            // a is 1 (result b) or equals b.
            return b
        case (false, true): return a
        case (true, true):
            // Either may be the 1 the other broadcasts over.
            if case .fixed(let x) = a { return x == 1 ? b : (canBe(b, x) || canBe(b, 1) ? a : nil) }
            if case .fixed(let y) = b { return y == 1 ? a : (canBe(a, y) || canBe(a, 1) ? b : nil) }
            return hull(a, b)
        }
    }

    /// NumPy broadcasting of two shapes.
    static func broadcast(_ a: [Dim], _ b: [Dim], _ op: String) throws -> [Dim] {
        if a == b { return a }
        let rank = Swift.max(a.count, b.count)
        var out = [Dim](repeating: .fixed(1), count: rank)
        let da = rank - a.count, db = rank - b.count
        for i in 0..<rank {
            let x = i < da ? Dim.fixed(1) : a[i - da]
            let y = i < db ? Dim.fixed(1) : b[i - db]
            guard let d = broadcastDim(x, y) else { throw fail(op, "shapes \(text(a)) and \(text(b)) do not broadcast") }
            out[i] = d
        }
        return out
    }

    /// True if `shape` broadcasts to exactly `target` (`Broadcast.expand` accepts it).
    static func broadcasts(_ shape: [Dim], to target: [Dim]) -> Bool {
        guard shape.count <= target.count else { return false }
        let offset = target.count - shape.count
        for (i, d) in shape.enumerated() {
            let t = target[i + offset]
            if d == .fixed(1) { continue }
            if case .fixed(let x) = d, case .fixed(let y) = t, x != y { return false }
            // d must be 1 or equal t: possible unless neither can hold.
            if !canBe(d, 1) && meet(d, t) == nil { return false }
            // A target of 1 takes only a 1.
            if t == .fixed(1) && !canBe(d, 1) { return false }
        }
        return true
    }

    /// A dim from a run-time size: exact sizes must not be negative.
    static func size(_ b: Bounds, _ op: String, _ what: @autoclosure () -> String) throws -> Dim {
        if let n = b.exact {
            guard n >= 0 else { throw fail(op, "negative size \(n) in \(what())") }
            return .fixed(n)
        }
        return b.dim
    }
}
