// The Jinja engine against outputs of Jinja2 3.1.6 in transformers' environment (each expected
// string below is what transformers' compiled template renders for the same source).
#include "emlab/jinja.h"

#include <gtest/gtest.h>

#include "emlab/error.h"

namespace emlab {
namespace {

using json = nlohmann::ordered_json;

std::string render(const std::string& source, const json& vars = json::object()) {
  return JinjaTemplate::parse(source, "t").render(vars);
}

// The InputError message of parsing + rendering, or "" when it renders.
std::string error_of(const std::string& source, const json& vars = json::object()) {
  try {
    render(source, vars);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

const json kVars = json::parse(R"({"x": {"a": {"b": [1, "é\"\n"], "n": null}, "t": true}})");

TEST(Jinja, NumbersAndPythonStrings) {
  EXPECT_EQ(render("{{ 1/2 }} {{ 4/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 2**10 }} {{ 1e20 }} {{ 0.1+0.2 }} "
                   "{{ 1e-5 }} {{ 3.0 }} {{ 123456789012345678.0 }} {{ 10.5 // 3 }}"),
            "0.5 2.0 3 -4 2 1024 1e+20 0.30000000000000004 1e-05 3.0 1.2345678901234568e+17 3.0");
  EXPECT_EQ(render("{{ [1,'a',None,True,{'k':'v'},1.5, (1,), (1,2)] }}"),
            "[1, 'a', None, True, {'k': 'v'}, 1.5, (1,), (1, 2)]");
  // repr picks the quote and escapes as Python does.
  EXPECT_EQ(render(R"({{ ['it\'s', 'a"b', 'x\ny', 'é\x01\u200b'] }})"), R"(["it's", 'a"b', 'x\ny', 'é\x01\u200b'])");
  EXPECT_EQ(render(R"({{ "a" "b" }}{{ 'a' ~ 1 ~ none ~ true }}{{ 'x' * 3 }}{{ [1] * 2 }}{{ -3|abs }}{{ 2 ** 3 ** 2 }})"),
            "aba1NoneTruexxx[1, 1]364");
  EXPECT_EQ(render("{{ '%s-%d'|format('a', 3) }}{{ '%s!' % 'x' }}{{ '%05.1f' % 3.14159 }}"), "a-3x!003.1");
}

TEST(Jinja, WhitespaceControlAsTransformersConfiguresIt) {
  // trim_blocks + lstrip_blocks; a single trailing newline of the template is dropped.
  EXPECT_EQ(render("  {% if true %}\n  x\n  {% endif %}\n  y  \n{{ 'z' }}\n"), "  x\n  y  \nz");
  EXPECT_EQ(render("{% if true %}\n  indented\n{% endif %}\n{% for i in [1] %}\n  {{ i }}\n{% endfor %}\n"),
            "  indented\n  1\n");
  EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
  EXPECT_EQ(render("x {%- if true %} y {% endif -%} z\n\n"), "x y z\n");
  EXPECT_EQ(render("{# comment #}a{#- c -#}  b {#+ keep +#} c"), "ab  c");
  EXPECT_EQ(render("line1\n{% if true -%}\n   kept\n{%- endif %}\nafter\n    {% set q = 1 %}\n    {{ q }}\n"
                   "{%+ if true %}plus{% endif %}"),
            "line1\nkeptafter\n    1\nplus");
  EXPECT_EQ(render("{{ 1 }}\n{{ 2 }}\n"), "1\n2");  // variable tags keep their newline
  EXPECT_EQ(render("a\r\n{% if true %}\r\nb{% endif %}"), "a\nb");
  EXPECT_EQ(render("{% raw %}{{ not parsed }}{% endraw %}{{ '{{' }}{{ {'a': {'b': 1}} }}"),
            "{{ not parsed }}{{{'a': {'b': 1}}");
}

TEST(Jinja, ScopesFollowJinja2) {
  // A loop body's set lives for one iteration; if-blocks do not scope; macros see the latest values.
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1,2] %}{{ x }}{% set x = x + 1 %}{{x}}{% endfor %}{{ x }}"), "12121");
  EXPECT_EQ(render("{% for i in [1,2] %}{% if i == 2 %}{{ y }}{% endif %}{% set y = i %}{% endfor %}[{{ y }}]"), "[]");
  EXPECT_EQ(render("{% if true %}{% set z = 5 %}{% endif %}{{ z }}"), "5");
  EXPECT_EQ(render("{% macro m() %}{{ q }}{% endmacro %}{% set q = 1 %}{{ m() }}{% set q = 2 %}{{ m() }}"), "12");
  EXPECT_EQ(render("{%- set ns = namespace(found=false) -%}{%- for m in [1,2] -%}{%- if m == 2 -%}"
                   "{%- set ns.found = true -%}{%- endif -%}{%- endfor -%}{{ ns.found }}"),
            "True");
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.a = 1 %}{{ ns.a }}{{ ns }}"), "1<Namespace {'a': 1}>");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_NE(error_of("{% set d = {'a':1} %}{% set d.a = 2 %}").find("non-namespace"), std::string::npos);
}

TEST(Jinja, ForLoops) {
  EXPECT_EQ(render("{% for a in [1,2,3] if a > 1 %}{{ loop.index }}/{{ loop.length }}{{ loop.previtem }}{{ loop.first }}"
                   "{{ loop.last }}{{ loop.revindex }}{% else %}none{% endfor %}"),
            "1/2TrueFalse22/22FalseTrue1");
  EXPECT_EQ(render("{% for a in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{% for k in {'a':1} %}{{ k }}{% endfor %}"),
            "a=1;b=2;a");
  EXPECT_EQ(render("{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 3 %}{% break %}{% endif %}"
                   "{{ i }}{% endfor %}"),
            "02");
  EXPECT_EQ(render("{% for i in range(3) %}{% for j in range(2) %}{{ loop.index }}{% endfor %}{{ loop.index }}|{% endfor %}"),
            "121|122|123|");
  EXPECT_EQ(render("{% for x in [1, 2] %}{{ loop.cycle('a','b') }}{{ loop.nextitem is defined }}{% endfor %}"), "aTruebFalse");
  EXPECT_EQ(render("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}{% for m in x.a %}{{ m }}{% endfor %}", kVars),
            "37bn");
  EXPECT_EQ(render("{% for c in 'hé' %}[{{ c }}]{% endfor %}"), "[h][é]");
  EXPECT_NE(error_of("{% for x in none %}{% endfor %}").find("not iterable"), std::string::npos);
}

TEST(Jinja, Macros) {
  EXPECT_EQ(render("{% macro f(a, b=2, c='x') %}{{ a }}-{{ b }}-{{ c }}{% endmacro %}{{ f(1) }}|{{ f(1, 3) }}|"
                   "{{ f(1, c='y') }}|{{ f(b=5, a=0) }}"),
            "1-2-x|1-3-x|1-2-y|0-5-x");
  // Recursion, and a macro's output used as a value.
  EXPECT_EQ(render("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * (fact(n - 1)|int) }}{% endif %}{% endmacro %}"
                   "{% set v = fact(5) %}{{ v ~ '!' }}"),
            "120!");
  EXPECT_NE(error_of("{% macro f(a) %}{{ a }}{% endmacro %}{{ f(1, 2) }}").find("not more than 1"), std::string::npos);
  EXPECT_NE(error_of("{{ m() }}{% macro m() %}x{% endmacro %}").find("'m' is undefined"), std::string::npos);
  // transformers' {% generation %} block renders its body; {% print %} prints.
  EXPECT_EQ(render("a{% generation %}b{{ 1 }}{% endgeneration %}{% print 'c' %}"), "ab1c");
}

TEST(Jinja, Filters) {
  EXPECT_EQ(render("{{ [3,1,2]|sort }}{{ ['b','A','a']|sort }}{{ [1,2,2,'a','A']|unique|list }}{{ [1,2,3]|reverse|list }}"
                   "{{ 'abc'|reverse }}{{ [1,2]|first }}{{ [1,2]|last }}{{ [1,2,3]|sum }}{{ [1,5,3]|max }}{{ [1,5,3]|min }}"),
            "[1, 2, 3]['A', 'a', 'b'][1, 2, 'a'][3, 2, 1]cba12651");
  EXPECT_EQ(render("{{ [{'a':1},{'a':2},{'b':3}]|selectattr('a')|list }}{{ [{'a':1},{'a':2},{'b':3}]|selectattr('a','equalto',2)|list }}"
                   "{{ [{'a':1},{'b':3}]|rejectattr('a','defined')|list }}{{ [{'a':1},{'a':2}]|map(attribute='a')|list }}"
                   "{{ ['a','b']|map('upper')|join(',') }}{{ [1,2,3,4]|select('odd')|list }}{{ [1,2,3,4]|reject('even')|list }}"),
            "[{'a': 1}, {'a': 2}][{'a': 2}][{'b': 3}][1, 2]A,B[1, 3][1, 3]");
  EXPECT_EQ(render("{{ 'x'|default('d') }}{{ u|default('d') }}{{ ''|default('d', true) }}{{ u|d('e') }}{{ none|default('n') }}"),
            "xddeNone");
  EXPECT_EQ(render(R"({{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(2, first=true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}|{{ 'x'|indent }})"),
            "a\n  b\n\n  c|  a\n  b|a\n  \n  b|x");
  EXPECT_EQ(render("{{ '3'|int + 1 }}{{ 'x'|int }}{{ 3.7|int }}{{ '2.5'|float }}{{ 5|string + 'a' }}{{ [1,2]|string }}"
                   "{{ 'hello'|capitalize }}{{ 'HeLLo wOrld'|title }}{{ 'Hi'|lower }}{{ 'Hi'|upper }}"),
            "4032.55a[1, 2]HelloHello WorldhiHI");
  EXPECT_EQ(render("{{ {'b':1,'a':2}|dictsort }}{{ {'a':1}|items|list }}{{ 'a-b-c'|replace('-', '+') }}"
                   "{{ 'aaa'|replace('a','b',2) }}{{ 'x'|replace('','-') }}"),
            "[('a', 2), ('b', 1)][('a', 1)]a+b+cbba-x-");
  EXPECT_EQ(render(R"({{ ' a '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ '\u00a0a\u3000'|trim }}|{{ x|length }}{{ 'é'|length }})", kVars),
            "a|a|a|21");
  EXPECT_EQ(render("{{ [1,2]|count }}{{ 'ab'|count }}{{ {'a': 1}|length }}"), "221");
  EXPECT_EQ(render("{{ [1,2,3]|join }}{{ [{'n':'a'},{'n':'b'}]|join(', ', attribute='n') }}{{ 'abc'|list }}{{ 'abc'|first }}"),
            "123a, b['a', 'b', 'c']a");
  EXPECT_EQ(render("{% set x %}  block {{ 1 + 1 }}  {% endset %}[{{ x }}]{% set y | trim | upper %}  ab  {% endset %}[{{ y }}]"
                   "{% filter upper %}hello {{ 'x' }}{% endfilter %}"),
            "[  block 2  ][AB]HELLO X");
  // map/select are generators: iterable, but tojson and length refuse them; a false input gives an empty one.
  EXPECT_EQ(render("{{ none|selectattr('type', 'equalto', 'x')|list|length }}"), "0");
  EXPECT_NE(error_of("{{ [{'a': 1}]|map(attribute='a')|tojson }}").find("generator"), std::string::npos);
  EXPECT_NE(error_of("{{ x|nosuchfilter }}").find("no filter named 'nosuchfilter'"), std::string::npos);
}

TEST(Jinja, ToJsonIsTransformersOwn) {
  // ensure_ascii=False, ", " / ": " separators, indent and sort_keys as json.dumps.
  EXPECT_EQ(render("{{ x|tojson }}|{{ x|tojson(indent=2) }}|{{ x|tojson(sort_keys=true, separators=(',', ':')) }}", kVars),
            "{\"a\": {\"b\": [1, \"é\\\"\\n\"], \"n\": null}, \"t\": true}|{\n  \"a\": {\n    \"b\": [\n      1,\n"
            "      \"é\\\"\\n\"\n    ],\n    \"n\": null\n  },\n  \"t\": true\n}|{\"a\":{\"b\":[1,\"é\\\"\\n\"],\"n\":null},\"t\":true}");
  EXPECT_EQ(render("{{ (x|tojson(indent=4))|indent(8) }}", kVars),
            "{\n            \"a\": {\n                \"b\": [\n                    1,\n                    \"é\\\"\\n\"\n"
            "                ],\n                \"n\": null\n            },\n            \"t\": true\n        }");
  EXPECT_EQ(render("{{ 'é'|tojson(ensure_ascii=true) }}{{ [1, [2, 3]]|tojson }}{{ {'a': none}|tojson }}{{ {}|tojson(indent=2) }}"),
            "\"\\u00e9\"[1, [2, 3]]{\"a\": null}{}");
  // |safe makes Markup: `+` with a plain string escapes the plain side; `~` gives a plain string.
  EXPECT_EQ(render("{{ '<a>'|safe + '<b>' }}|{{ 'x' + '<y>'|safe }}|{{ ('<a>'|safe ~ '<b>') }}"), "<a>&lt;b&gt;|x<y>|<a><b>");
  EXPECT_NE(error_of("{{ u|tojson }}").find("not JSON serializable"), std::string::npos);
}

TEST(Jinja, Tests) {
  EXPECT_EQ(render("{{ 1 is number }}{{ 'a' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}"
                   "{{ 1 is iterable }}{{ none is none }}{{ true is boolean }}{{ true is true }}{{ false is false }}"
                   "{{ 1 is true }}{{ 2 is even }}{{ 3 is odd }}{{ 6 is divisibleby 3 }}{{ 'a' is in 'abc' }}{{ 1 is eq 1 }}"
                   "{{ u is undefined }}{{ 1.0 is float }}{{ 1 is integer }}{{ 'ab' is lower }}{{ [] is sequence }}"
                   "{{ 'user' is equalto 'user' }}{{ x is not none }}{{ x.a is mapping }}",
                   kVars),
            "TrueTrueTrueTrueTrueFalseTrueTrueTrueTrueFalseTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue");
  EXPECT_EQ(render("{{ 'a' in 'abc' }}{{ 'd' not in 'abc' }}{{ 1 in [1,2] }}{{ 'a' in {'a':1} }}{{ not 1 }}{{ 1 and 2 }}"
                   "{{ 0 or 'x' }}{{ 1 < 2 < 3 }}{{ 3 > 2 > 4 }}{{ 'b' > 'a' }}{{ [1,2] == [1,2] }}{{ (1,2) == [1,2] }}"
                   "{{ 1 == 1.0 }}{{ true == 1 }}{{ 1 if false }}|{{ 'y' if true else 'n' }}"),
            "TrueTrueTrueTrueFalse2xTrueFalseTrueTrueFalseTrueTrue|y");
  EXPECT_NE(error_of("{{ x is nosuchtest }}").find("no test named 'nosuchtest'"), std::string::npos);
}

TEST(Jinja, MethodsSubscriptsAndSlices) {
  EXPECT_EQ(render("{{ 'a b  c'.split() }}{{ 'a,b'.split(',') }}{{ ' x '.strip() }}{{ 'hello world-x'.title() }}"
                   "{{ 'ab'.upper() }}{{ 'a,b,c'.split(',', 1) }}{{ '  a b '.split(None, 1) }}"),
            "['a', 'b', 'c']['a', 'b']xHello World-XAB['a', 'b,c']['a', 'b ']");
  EXPECT_EQ(render(R"({{ 'abc'.startswith('a') }}{{ 'abc'.endswith(('x','c')) }}{{ 'abc'.replace('b','B') }}{{ '\n\nx\n'.lstrip('\n') }})"
                   R"({{ 'x\n\n'.rstrip('\n') }}{{ 'a</think>b'.split('</think>')[-1] }}{{ 'abc'.find('c') }}{{ 'aXbXc'.count('X') }})"
                   R"({{ '-'.join(['a','b']) }})"),
            "TrueTrueaBcx\nxb22a-b");
  EXPECT_EQ(render("{{ {'a':1}.get('a') }}{{ {'a':1}.get('b') }}{{ {'a':1}.get('b', 2) }}{{ {'a':1}.keys()|list }}"
                   "{{ {'a':1}.values()|list }}{{ {'a':1}['a'] }}{{ {'a':1}.a }}{{ {'a':1}.b is defined }}"),
            "1None2['a'][1]11False");
  EXPECT_EQ(render("{{ 'abc'[::-1] }}{{ 'héllo'[1:3] }}{{ 'héllo'|length }}{{ [1,2,3,4][1:] }}{{ [1,2,3,4][::-2] }}"
                   "{{ 'abcdef'[-2:] }}{{ 'abc'[5:] }}{{ [1,2,3][-1] }}{{ 'abc'[1] }}{{ 'abc'[10] }}|{{ x.a.b }}{{ x['a']['c'] }}",
                   kVars),
            "cbaél5[2, 3, 4][4, 2]ef3b|[1, 'é\"\\n']");
  EXPECT_EQ(render("{{ dict(a=1, b='x') }}{{ namespace(a=1).a }}{{ range(3)|list }}{{ range(1, 7, 2)|list }}"),
            "{'a': 1, 'b': 'x'}1[0, 1, 2][1, 3, 5]");
  // The immutable sandbox refuses methods that modify.
  EXPECT_NE(error_of("{{ [1,2].append(3) }}").find("unsafe"), std::string::npos);
}

TEST(Jinja, UndefinedIsJinjasDefault) {
  EXPECT_EQ(render("{{ u }}{{ u ~ 'a' }}{{ u is defined }}{{ u == 'a' }}{{ u != 'a' }}{{ 'a' in u }}{{ u | length }}"
                   "{{ u|trim }}{{ x.nope }}|{% for i in u %}x{% endfor %}{% if u %}x{% endif %}",
                   kVars),
            "aFalseFalseTrueFalse0|");
  EXPECT_NE(error_of("{{ 'a' + u }}").find("'u' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ u.x }}").find("'u' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ x.y.z }}", kVars).find("has no attribute 'y'"), std::string::npos);
  EXPECT_NE(error_of("{{ foo() }}").find("'foo' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ 'a' + 1 }}").find("can only concatenate str"), std::string::npos);
}

TEST(Jinja, ErrorsNameTheTemplateAndLine) {
  auto parse_error = [](const std::string& source) {
    try {
      JinjaTemplate::parse(source, "my.jinja");
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(parse_error("a\nb\n{% if x %}\n{{ (1 + }}\n{% endif %}").find("my.jinja: line 4:"), std::string::npos);
  EXPECT_NE(parse_error("{% for x in y %}\n\nno end").find("unexpected end of template, expected 'endfor'"), std::string::npos);
  EXPECT_NE(parse_error("x\n{{ y|bogus }}").find("my.jinja: line 2: no filter named 'bogus'"), std::string::npos);
  EXPECT_NE(parse_error("{% do x %}").find("unknown tag 'do'"), std::string::npos);
  EXPECT_NE(parse_error("{# open").find("missing end of comment"), std::string::npos);
  EXPECT_NE(parse_error("{% break %}").find("outside of a loop"), std::string::npos);
  try {
    JinjaTemplate::parse("{%- for m in messages %}\n  {%- if m.role == 'system' %}\n"
                         "    {{- raise_exception('System role not supported') }}\n  {%- endif %}\n{%- endfor %}",
                         "gemma.jinja")
        .render(json{{"messages", json::array({{{"role", "system"}}})}});
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "gemma.jinja: line 3: System role not supported");
  }
}

TEST(Jinja, StrftimeNowUsesTheGivenClock) {
  JinjaRenderOptions o;
  o.now = 1700000000;  // 2023-11-14 22:13 UTC: November 2023 in every time zone
  EXPECT_EQ(JinjaTemplate::parse("{{ strftime_now('%Y %b') }}").render(json::object(), o).text, "2023 Nov");
}

TEST(Jinja, TracesInputStringsToTheOutput) {
  const json vars = {{"messages", json::array({{{"role", "user"}, {"content", "  Hi  "}},
                                               {{"role", "assistant"}, {"content", "<think>r</think>Answer"}},
                                               {{"role", "assistant"}, {"content", ""}}})}};
  JinjaRenderOptions o;
  for (int i = 0; i < 3; ++i) o.traced["/messages/" + std::to_string(i) + "/content"] = i;
  auto t = JinjaTemplate::parse(
      "{% macro wrap(s) %}[{{ s }}]{% endmacro %}"
      "{% for m in messages %}<{{ m.role }}>"
      "{% if m.role == 'user' %}{{ wrap(m.content|trim) }}{% else %}{{ m.content.split('</think>')[-1] + '|' }}{% endif %}"
      "{% endfor %}");
  JinjaRendering r = t.render(vars, o);
  ASSERT_EQ(r.text, "<user>[Hi]<assistant>Answer|<assistant>|");
  ASSERT_EQ(r.spans.size(), 3u);
  EXPECT_EQ(r.spans[0].tag, 0);
  EXPECT_EQ(r.text.substr(r.spans[0].begin, r.spans[0].end - r.spans[0].begin), "Hi");
  EXPECT_EQ(r.spans[1].tag, 1);
  EXPECT_EQ(r.text.substr(r.spans[1].begin, r.spans[1].end - r.spans[1].begin), "Answer");
  // The empty content is an empty span where it was written.
  EXPECT_EQ(r.spans[2].tag, 2);
  EXPECT_EQ(r.spans[2].begin, r.text.size() - 1);
  EXPECT_EQ(r.spans[2].end, r.spans[2].begin);
  // Rewriting operations drop the trace.
  EXPECT_TRUE(t.parse("{{ messages[0].content|upper }}").render(vars, o).spans.empty());
}

TEST(Jinja, ReadsNames) {
  auto t = JinjaTemplate::parse("{% for m in messages %}{{ m.content }}{% endfor %}{{ bos_token }}");
  EXPECT_TRUE(t.reads("messages"));
  EXPECT_TRUE(t.reads("bos_token"));
  EXPECT_FALSE(t.reads("content"));  // an attribute, not a variable
  EXPECT_FALSE(JinjaTemplate::parse("{{ '<|im_start|>' }}").reads("messages"));
}

}  // namespace
}  // namespace emlab
