import XCTest
@testable import MLXCRuntime

/// Templates come with model downloads: sizes a template computes are bounded before anything is
/// allocated, and a render cannot loop, recurse or grow without end (issue 17). Found by inputs
/// written for the `tools/fuzz chat-template` binary after reading the builtins (`center(10**12)`
/// asked ASan for 500 GB); the fuzzer's own runs had not reached them yet.
final class ChatTemplateLimitsTests: XCTestCase {
    func render(_ source: String) throws -> String {
        try ChatTemplate(source: source, origin: "t.jinja").render(messages: [ChatMessage(role: "user", content: "hi")],
                                                                   addGenerationPrompt: true)
    }

    func assertRefused(_ source: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try render(source), file: file, line: line) { error in
            XCTAssertTrue(error is TemplateError, "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".hasPrefix("t.jinja "), "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(expected), "expected \"\(expected)\" in: \(error)", file: file, line: line)
        }
    }

    func testHugeSizesAreRefusedBeforeAllocating() {
        assertRefused(#"{{ "x"|center(1000000000000) }}"#, "center width of 1000000000000")
        assertRefused(#"{{ "ab" * 10000000000 }}"#, "'*' of 10000000000")
        assertRefused(#"{{ [1, 2] * 10000000000 }}"#, "'*' of 10000000000")
        assertRefused("{% set s %}a\nb{% endset %}{{ s|indent(1000000000000) }}", "indent width of 1000000000000")
        assertRefused(#"{{ messages|tojson(indent=4611686018427387904) }}"#, "tojson indent of 4611686018427387904")
        assertRefused(#"{% for i in range(100000000000) %}{% endfor %}"#, "range(0, 100000000000, 1) has more than")
        assertRefused(#"{% for i in range(-9223372036854775807, 9223372036854775807) %}{% endfor %}"#, "has more than")
    }

    func testRendersCannotLoopRecurseOrGrowWithoutEnd() {
        let limit = RenderBudget.maxIterations
        RenderBudget.maxIterations = 1000
        defer { RenderBudget.maxIterations = limit }
        assertRefused("{% for a in range(40) %}{% for b in range(40) %}{% endfor %}{% endfor %}", "more than 1000 loop iterations in one render")
        XCTAssertNoThrow(try render("{% for a in range(30) %}{% for b in range(30) %}{% endfor %}{% endfor %}"))
        assertRefused("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nested more than 200 calls deep")
        assertRefused(#"{% for a in range(4096) %}{{ "x" * 16777216 }}{% endfor %}"#, "the rendered text passed")
    }

    func testDeepNestingIsASyntaxErrorNotAStackOverflow() {
        // 8000 unary minuses overflowed the parser's stack (run through the fuzz binary).
        for source in ["{{ " + String(repeating: "-", count: 8000) + "1 }}", "{{ " + String(repeating: "not ", count: 8000) + "true }}",
                       "{{ " + String(repeating: "(", count: 8000) + "1" + String(repeating: ")", count: 8000) + " }}",
                       String(repeating: "{% if true %}", count: 8000) + String(repeating: "{% endif %}", count: 8000)] {
            XCTAssertThrowsError(try ChatTemplate(source: source, origin: "t.jinja")) { error in
                XCTAssertTrue("\(error)".contains("nested more than 256 levels deep"), "\(error)")
            }
        }
        XCTAssertEqual(try render("{{ " + String(repeating: "(", count: 100) + "- -1" + String(repeating: ")", count: 100) + " }}"), "1")
    }

    func testOrdinarySizesStillRenderAsPythonDoes() throws {
        XCTAssertEqual(try render(#"{{ "ab" * 3 }}|{{ "ab" * -2 }}|{{ [1] * 2 }}"#), "ababab||[1, 1]")
        XCTAssertEqual(try render(#"[{{ "x"|center(5) }}][{{ "xyz"|center(-4) }}]"#), "[  x  ][xyz]")
        XCTAssertEqual(try render("{% set s %}a\nb{% endset %}{{ s|indent(2) }}|{{ s|indent(-3) }}"), "a\n  b|a\nb")
        XCTAssertEqual(try render("{{ range(10, 0, -3)|join(',') }}|{{ range(5, 1)|length }}"), "10,7,4,1|0")
        XCTAssertEqual(try render("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(150) }}").count, 342)
    }

    /// Integer conversions and arithmetic at the 64-bit limits (issue 17, the second round): `1e300|int`,
    /// `"9" * 30|int`, `Int.min // -1`, `Int.min % -1`, `(Int.max - 1) % Int.max`, `-Int.min`, `Int.min|abs`,
    /// `"%d"|format(1e300)` and `split(sep, Int.max)` each trapped (a crash, not an error). Now Python's
    /// values where they fit in a float, an error where Python would make a big integer, Jinja's 0 for
    /// NaN/infinity; `//` is exact integer floor division (through Double it was off past 2^53).
    func testIntegerLimitsAreValuesOrErrorsNotTraps() throws {
        assertRefused("{{ 1e300|int }}", "int: 1e+300 is outside the 64-bit integer range")
        assertRefused(#"{{ "9999999999999999999999"|int }}"#, "int: 1e+22 is outside the 64-bit integer range")
        assertRefused(#"{{ "%d"|format(1e300) }}"#, "int: 1e+300 is outside the 64-bit integer range")
        XCTAssertEqual(try render(#"{{ "nan"|int }}|{{ (1e308 * 10)|int }}|{{ "12"|int }}|{{ 2.9|int }}|{{ -2.9|int }}"#), "0|0|12|2|-2")
        XCTAssertEqual(try render("{{ (-9223372036854775807 - 1) // -1 }}|{{ (-9223372036854775807 - 1) % -1 }}"), "9.223372036854776e+18|0")
        XCTAssertEqual(try render("{{ 9223372036854775806 % 9223372036854775807 }}|{{ -9223372036854775807 % 9223372036854775807 }}"),
                       "9223372036854775806|0")
        XCTAssertEqual(try render("{{ -7 % 3 }}|{{ 7 % -3 }}|{{ -7 // 2 }}|{{ 7 // -2 }}|{{ 6 // 3 }}|{{ 9007199254740993 // 1 }}"),
                       "2|-2|-4|-4|2|9007199254740993")
        XCTAssertEqual(try render("{{ (-9223372036854775807 - 1)|abs }}|{{ -(-9223372036854775807 - 1) }}|{{ -5|abs }}"),
                       "9.223372036854776e+18|9.223372036854776e+18|5")
        XCTAssertEqual(try render(#"{{ "a,b,c".split(",", 9223372036854775807) }}|{{ "a,b,c".rsplit(",", 9223372036854775807) }}|{{ "a,b,c".split(",", 1) }}"#),
                       "['a', 'b', 'c']|['a', 'b', 'c']|['a', 'b,c']")
    }

    /// What only `'*'` was bounded for: `+` and `~` doubling a namespace value in a loop (2^60 characters),
    /// `replace`, `join` and `indent` with a string width multiplying sizes; and values nested a million
    /// deep by `{% set ns.x = [ns.x] %}` in a loop (a stack overflow when printed or freed) or a namespace
    /// holding itself (printing recursed without end). Each is now an error before the allocation.
    func testConcatenationAndNestingAreBounded() throws {
        assertRefused(#"{% set ns = namespace(s="x") %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"#, "'~' would produce more than 16777216")
        assertRefused(#"{% set ns = namespace(s="x") %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"#, "'+' would produce more than 16777216")
        assertRefused(#"{{ ("x" * 100000)|replace("x", "y" * 200) }}"#, "replace would produce more than 16777216")
        assertRefused(#"{{ (["x" * 100000] * 200)|join }}"#, "join would produce more than 16777216")
        assertRefused(#"{{ ",".join(["x" * 100000] * 200) }}"#, "join would produce more than 16777216")
        assertRefused(#"{{ ("\n" * 200000)|indent("x" * 100) }}"#, "indent would produce more than 16777216")
        assertRefused("{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}", "value nested more than 256 deep")
        assertRefused("{% set ns = namespace(a=1) %}{% set ns.me = ns %}{{ ns }}", "a namespace that contains itself")
        assertRefused("{% set ns = namespace(a=1) %}{% set other = namespace(n=ns) %}{% set ns.b = [other] %}{{ ns|tojson }}", "contains itself")
        // tools/fuzz chat-template (320 791 executions): a search string with NULs crashed Foundation's replace.
        XCTAssertEqual(try render("{{ 'x'|replace('x\u{0}\u{0}\u{0}', 'y') }}|{{ 'xx'|replace('x\u{0}', 'y') }}|{{ 'x\u{0}x'|replace('x\u{0}', 'y') }}"), "x|xx|yx")
        XCTAssertEqual(try render("{{ 'aaaa'|replace('aa', 'b') }}|{{ 'abab'|replace('b', 'c', 1) }}|{{ 'ab'|replace('', 'z') }}"), "bb|acab|ab")
        // Ordinary uses are untouched, and a refused set leaves the namespace as it was.
        XCTAssertEqual(try render("{% set ns = namespace(x=[]) %}{% for i in range(200) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x|length }}"), "1")
        XCTAssertEqual(try render(#"{{ ("ab"|replace("a", "xyz")) ~ "|" ~ ["a", "b"]|join("-") }}"#), "xyzb|a-b")
        XCTAssertEqual(try render("{% set s %}a\nb{% endset %}{{ s|indent(\"> \") }}"), "a\n> b")
        XCTAssertEqual(try render(#"{% set ns = namespace(s="") %}{% for m in messages %}{% set ns.s = ns.s + m.role %}{% endfor %}{{ ns.s }}"#), "user")
    }
}
