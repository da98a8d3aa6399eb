/// The parsed form of a chat template: expressions and statements, each with the source offset
/// errors point at.
indirect enum TemplateExpr {
    case literal(TemplateValue)
    case name(String, at: Int)
    case list([TemplateExpr])
    case tuple([TemplateExpr])
    case dict([(TemplateExpr, TemplateExpr)], at: Int)
    case attribute(TemplateExpr, String, at: Int)
    case item(TemplateExpr, TemplateExpr, at: Int)
    case slice(TemplateExpr, TemplateExpr?, TemplateExpr?, TemplateExpr?, at: Int)
    case call(TemplateExpr, [TemplateExpr], [(String, TemplateExpr)], at: Int)
    case filter(TemplateExpr, String, [TemplateExpr], [(String, TemplateExpr)], at: Int)
    case test(TemplateExpr, String, [TemplateExpr], negated: Bool, at: Int)
    case not(TemplateExpr)
    case negate(TemplateExpr, at: Int)
    case binary(String, TemplateExpr, TemplateExpr, at: Int)
    case and(TemplateExpr, TemplateExpr)
    case or(TemplateExpr, TemplateExpr)
    case conditional(TemplateExpr, then: TemplateExpr, else: TemplateExpr?)
}

/// Where a `set` stores: a name, names unpacked from a sequence, or a namespace attribute.
enum TemplateTarget {
    case name(String)
    case names([String])
    case attribute(namespace: String, attribute: String)
}

indirect enum TemplateNode {
    case text(String)
    case output(TemplateExpr)
    case ifChain([(TemplateExpr, [TemplateNode])], otherwise: [TemplateNode])
    case forLoop(targets: [String], sequence: TemplateExpr, filter: TemplateExpr?, body: [TemplateNode], otherwise: [TemplateNode], at: Int)
    case set(TemplateTarget, TemplateExpr, at: Int)
    case setBlock(TemplateTarget, [TemplateNode], at: Int)
    case macro(name: String, parameters: [(String, TemplateExpr?)], body: [TemplateNode])
    case breakLoop(at: Int)
    case continueLoop(at: Int)
}
