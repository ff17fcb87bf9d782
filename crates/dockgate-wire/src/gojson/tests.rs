// Expected values were checked against Go's encoding/json (json.NewDecoder(r).Decode) on the same
// inputs and equivalent Go types.
use super::*;

static MOUNT: Shape = Shape::Struct(&[
    Field {
        name: "Type",
        shape: Shape::String,
    },
    Field {
        name: "Source",
        shape: Shape::String,
    },
    Field {
        name: "Target",
        shape: Shape::String,
    },
    Field {
        name: "ReadOnly",
        shape: Shape::Bool,
    },
]);
static MOUNT_PTR: Shape = Shape::Ptr(&MOUNT);
static INT_PTR: Shape = Shape::Ptr(&Shape::Int);
static STRINGS: Shape = Shape::Slice(&Shape::String);
static HOST_CONFIG_FIELDS: &[Field] = &[
    Field {
        name: "Binds",
        shape: Shape::Slice(&Shape::String),
    },
    Field {
        name: "Privileged",
        shape: Shape::Bool,
    },
    Field {
        name: "CapAdd",
        shape: Shape::StrSlice,
    },
    Field {
        name: "Mounts",
        shape: Shape::Slice(&MOUNT),
    },
    Field {
        name: "Devices",
        shape: Shape::Slice(&MOUNT_PTR),
    },
    Field {
        name: "PidsLimit",
        shape: Shape::Ptr(&Shape::Int),
    },
    Field {
        name: "Memory",
        shape: Shape::Int,
    },
    Field {
        name: "BlkioWeight",
        shape: Shape::Uint,
    },
    Field {
        name: "Init",
        shape: Shape::Ptr(&Shape::Bool),
    },
    Field {
        name: "Sysctls",
        shape: Shape::Map(&Shape::String),
    },
    Field {
        name: "Tmpfs",
        shape: Shape::Map(&MOUNT),
    },
    Field {
        name: "Links",
        shape: Shape::Ptr(&STRINGS),
    },
    Field {
        name: "Cpu_Shares",
        shape: Shape::Int,
    },
];
static HOST_CONFIG: Shape = Shape::Struct(HOST_CONFIG_FIELDS);
static CREATE: Shape = Shape::Struct(&[
    Field {
        name: "Image",
        shape: Shape::String,
    },
    Field {
        name: "Cmd",
        shape: Shape::StrSlice,
    },
    Field {
        name: "Labels",
        shape: Shape::Map(&Shape::String),
    },
    Field {
        name: "Volumes",
        shape: Shape::Map(&Shape::Opaque),
    },
    Field {
        name: "HostConfig",
        shape: Shape::Ptr(&HOST_CONFIG),
    },
    Field {
        name: "Defaults",
        shape: Shape::Struct(HOST_CONFIG_FIELDS),
    },
    Field {
        name: "StopTimeout",
        shape: Shape::Ptr(&INT_PTR),
    },
    Field {
        name: "Kind",
        shape: Shape::String,
    },
    Field {
        name: "Size",
        shape: Shape::Int,
    },
    Field {
        name: "Mode",
        shape: Shape::String,
    },
    Field {
        name: "mode",
        shape: Shape::String,
    },
    Field {
        name: "Spec",
        shape: Shape::Opaque,
    },
]);

fn decode(json: &str) -> Go {
    match unmarshal(json.as_bytes(), &CREATE) {
        Ok(go) => go,
        Err(e) => panic!("{json}: {e}"),
    }
}

fn refuse(json: &[u8]) -> Error {
    match unmarshal(json, &CREATE) {
        Ok(go) => panic!("{:?} accepted: {go:?}", String::from_utf8_lossy(json)),
        Err(e) => e,
    }
}

fn at<'a>(go: &'a Go, path: &str) -> View<'a> {
    go.view(&CREATE).path(path).expect(path)
}

fn bool_at(go: &Go, path: &str) -> Option<bool> {
    at(go, path).as_bool().expect(path)
}

fn str_at<'a>(go: &'a Go, path: &str) -> Option<&'a str> {
    at(go, path).as_str().expect(path)
}

fn strings_at<'a>(go: &'a Go, path: &str) -> Vec<&'a str> {
    at(go, path).strings().expect(path)
}

fn mounts(go: &Go, path: &str) -> Vec<(String, String)> {
    at(go, path)
        .elements()
        .expect(path)
        .map(|m| {
            let source = m.field("Source").and_then(View::as_str).expect("Source");
            let target = m.field("Target").and_then(View::as_str).expect("Target");
            (
                source.unwrap_or("-").to_owned(),
                target.unwrap_or("-").to_owned(),
            )
        })
        .collect()
}

fn pair(source: &str, target: &str) -> (String, String) {
    (source.to_owned(), target.to_owned())
}

#[test]
fn keys_fold_ascii_case() {
    // decode.go object(): byExactName, else byFoldedName[foldName(key)].
    for key in ["Privileged", "privileged", "PRIVILEGED", "pRiViLeGeD"] {
        let go = decode(&format!(r#"{{"HostConfig":{{"{key}":true}}}}"#));
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true), "{key}");
    }
}

#[test]
fn keys_fold_kelvin_and_long_s() {
    // fold.go: foldRune(U+212A) = 'K', foldRune(U+017F) = 'S'.
    let go = decode("{\"\u{212A}ind\":\"a\",\"\u{17F}ize\":5}");
    assert_eq!(str_at(&go, "Kind"), Some("a"));
    assert_eq!(at(&go, "Size").as_i64(), Ok(Some(5)));
    let go = decode(r#"{"\u212aIND":"b","\u017fIZE":6,"HostConfig":{"Privileged":true}}"#);
    assert_eq!(str_at(&go, "Kind"), Some("b"));
    assert_eq!(at(&go, "Size").as_i64(), Ok(Some(6)));
}

#[test]
fn keys_do_not_fold_dotted_and_dotless_i() {
    // unicode.caseOrbit keeps U+0130 and U+0131 in orbits of their own.
    let go = decode("{\"HostConfig\":{\"Pr\u{131}vileged\":true,\"PR\u{130}VILEGED\":true}}");
    assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(false));
}

#[test]
fn keys_prefer_exact_match_then_first_fold() {
    // An exact match wins; among folded matches the first field in Go's order wins.
    let go = decode(r#"{"mode":"exact"}"#);
    assert_eq!(str_at(&go, "Mode"), Some(""));
    assert_eq!(str_at(&go, "mode"), Some("exact"));
    let go = decode(r#"{"MODE":"folded"}"#);
    assert_eq!(str_at(&go, "Mode"), Some("folded"));
    assert_eq!(str_at(&go, "mode"), Some(""));
}

#[test]
fn keys_fold_only_letters() {
    // Go v1 folding keeps '_' and '-': "CpuShares" does not reach "Cpu_Shares".
    let go = decode(r#"{"HostConfig":{"CPU_SHARES":1,"CpuShares":2,"cpu-shares":3}}"#);
    assert_eq!(at(&go, "HostConfig.Cpu_Shares").as_i64(), Ok(Some(1)));
}

#[test]
fn keys_unescape_before_matching() {
    // unquoteBytes runs on the key before the field lookup.
    let go = decode(r#"{"HostConfig":{"Privil\u0065ged":true}}"#);
    assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true));
    let go = decode(r#"{"HostConfig":{"Privileged\u0000":true}}"#);
    assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(false));
}

#[test]
fn duplicate_scalar_last_wins_and_null_keeps() {
    // Each occurrence decodes into the same field; null into a bool is a no-op.
    let go = decode(r#"{"HostConfig":{"Privileged":true,"Privileged":false}}"#);
    assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(false));
    let go = decode(r#"{"HostConfig":{"Privileged":false,"privileged":true}}"#);
    assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true));
    let go = decode(r#"{"HostConfig":{"Privileged":true,"Privileged":null}}"#);
    assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true));
    let go = decode(r#"{"Image":"a","Image":null,"Size":3,"Size":null}"#);
    assert_eq!(str_at(&go, "Image"), Some("a"));
    assert_eq!(at(&go, "Size").as_i64(), Ok(Some(3)));
}

#[test]
fn duplicate_struct_merges() {
    // A struct field is decoded in place; null leaves it unchanged.
    let go = decode(r#"{"Defaults":{"Privileged":true},"Defaults":null,"Defaults":{"Memory":5}}"#);
    assert_eq!(bool_at(&go, "Defaults.Privileged"), Some(true));
    assert_eq!(at(&go, "Defaults.Memory").as_i64(), Ok(Some(5)));
}

#[test]
fn duplicate_pointer_to_struct_merges_until_null() {
    // indirect() reuses a non-nil pointee; null sets the pointer to nil.
    let go = decode(r#"{"HostConfig":{"Privileged":true},"HostConfig":{"Memory":5}}"#);
    assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true));
    assert_eq!(at(&go, "HostConfig.Memory").as_i64(), Ok(Some(5)));
    let go = decode(r#"{"HostConfig":{"Privileged":true},"HostConfig":null}"#);
    assert_eq!(at(&go, "HostConfig").is_nil(), Ok(true));
    assert_eq!(bool_at(&go, "HostConfig.Privileged"), None);
    let go = decode(r#"{"HostConfig":{"Privileged":true},"HostConfig":null,"HostConfig":{}}"#);
    assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(false));
}

#[test]
fn duplicate_map_keeps_entries_and_replaces_values() {
    // object() keeps a non-nil map; each value is decoded into a fresh zero mapElem.
    let go = decode(r#"{"Labels":{"a":"1","b":"2"},"Labels":{"a":"3"},"Labels":{}}"#);
    let labels: Vec<_> = at(&go, "Labels")
        .entries()
        .expect("entries")
        .map(|(k, v)| (k, v.as_str().expect("str")))
        .collect();
    assert_eq!(labels, [("a", Some("3")), ("b", Some("2"))]);
    let go =
        decode(r#"{"HostConfig":{"Tmpfs":{"/t":{"Source":"s"}},"Tmpfs":{"/t":{"Target":"t"}}}}"#);
    let (key, mount) = at(&go, "HostConfig.Tmpfs")
        .entries()
        .expect("map")
        .next()
        .expect("entry");
    assert_eq!(key, "/t");
    assert_eq!(mount.field("Source").and_then(View::as_str), Ok(Some("")));
    assert_eq!(mount.field("Target").and_then(View::as_str), Ok(Some("t")));
    let go = decode(r#"{"Labels":{"a":"1"},"Labels":null}"#);
    assert_eq!(at(&go, "Labels").is_nil(), Ok(true));
}

#[test]
fn map_keys_are_verbatim_after_unescaping() {
    // Map keys are not folded; invalid UTF-8 and lone surrogates become U+FFFD and may collide.
    let go = decode(r#"{"Labels":{"A":"1","a":"2","\u0062":"3","\ud800":"4","\ufffd":"5"}}"#);
    let labels = go
        .view(&CREATE)
        .field("Labels")
        .expect("Labels")
        .go()
        .expect("present");
    assert_eq!(labels.get("A").and_then(Go::as_str), Some("1"));
    assert_eq!(labels.get("a").and_then(Go::as_str), Some("2"));
    assert_eq!(labels.get("b").and_then(Go::as_str), Some("3"));
    assert_eq!(labels.get("\u{FFFD}").and_then(Go::as_str), Some("5"));
    assert_eq!(labels.as_map().map(<[_]>::len), Some(4));
}

#[test]
fn duplicate_slice_reuses_elements_and_truncates() {
    // array(): elements below the old length are decoded in place, then the length is cut.
    let go = decode(
        r#"{"HostConfig":{"Mounts":[{"Source":"/","Target":"/host"}],"Mounts":[{"Target":"/x"}]}}"#,
    );
    assert_eq!(mounts(&go, "HostConfig.Mounts"), [pair("/", "/x")]);
    let go = decode(r#"{"HostConfig":{"Binds":["/:/a","/b:/b"],"Binds":["/c:/c"]}}"#);
    assert_eq!(strings_at(&go, "HostConfig.Binds"), ["/c:/c"]);
}

#[test]
fn slice_truncated_tail_comes_back() {
    // SetLen within the capacity exposes the old elements, which are then decoded into.
    let go = decode(
        r#"{"HostConfig":{"Mounts":[{"Source":"/data","Target":"/d"},{"Source":"/","Target":"/host"}],
                "Mounts":[{}],"Mounts":[{},{}]}}"#,
    );
    assert_eq!(
        mounts(&go, "HostConfig.Mounts"),
        [pair("/data", "/d"), pair("/", "/host")]
    );
    let go = decode(r#"{"HostConfig":{"Binds":["a","/:/host"],"Binds":["x"],"Binds":["y",null]}}"#);
    assert_eq!(strings_at(&go, "HostConfig.Binds"), ["y", "/:/host"]);
    let go = decode(r#"{"HostConfig":{"Links":["a","b"],"Links":["c"],"Links":[null,null]}}"#);
    assert_eq!(strings_at(&go, "HostConfig.Links"), ["c", "b"]);
}

#[test]
fn slice_of_pointers_tail_comes_back_and_merges() {
    // A nil element stays in the backing array; a non-nil one is reused by indirect().
    let go = decode(
        r#"{"HostConfig":{"Devices":[{"Source":"/dev/a"},{"Source":"/dev/b"}],"Devices":[null],
                "Devices":[{"Target":"/x"},{"Target":"/y"}]}}"#,
    );
    assert_eq!(
        mounts(&go, "HostConfig.Devices"),
        [pair("", "/x"), pair("/dev/b", "/y")]
    );
}

#[test]
fn empty_array_and_null_reset_the_backing_array() {
    // `[]` is a new empty slice, null a nil one: nothing comes back afterwards.
    for reset in ["[]", "null"] {
        let go = decode(&format!(
            r#"{{"HostConfig":{{"Binds":["a","/:/host"],"Binds":{reset},"Binds":["x",null]}}}}"#
        ));
        assert_eq!(strings_at(&go, "HostConfig.Binds"), ["x", ""], "{reset}");
    }
    let go = decode(r#"{"HostConfig":{"Binds":[]}}"#);
    assert_eq!(at(&go, "HostConfig.Binds").is_nil(), Ok(false));
    let go = decode(r#"{"HostConfig":{"Binds":["a"],"Binds":null}}"#);
    assert_eq!(at(&go, "HostConfig.Binds").is_nil(), Ok(true));
}

#[test]
fn str_slice_replaces_and_accepts_a_string() {
    // strslice.StrSlice.UnmarshalJSON: fresh []string, else a single string; null gives nil.
    let go = decode(r#"{"HostConfig":{"CapAdd":"SYS_ADMIN"}}"#);
    assert_eq!(strings_at(&go, "HostConfig.CapAdd"), ["SYS_ADMIN"]);
    let go = decode(r#"{"Cmd":["a","b"],"Cmd":[null]}"#);
    assert_eq!(strings_at(&go, "Cmd"), [""]);
    let go = decode(r#"{"Cmd":["a"],"Cmd":null}"#);
    assert_eq!(at(&go, "Cmd").is_nil(), Ok(true));
    let go = decode(r#"{"Cmd":[]}"#);
    assert_eq!(at(&go, "Cmd").is_nil(), Ok(false));
    assert!(matches!(
        refuse(br#"{"Cmd":["a",1]}"#),
        Error::TypeMismatch { .. }
    ));
    assert!(matches!(
        refuse(br#"{"Cmd":{}}"#),
        Error::TypeMismatch { .. }
    ));
}

#[test]
fn null_sets_pointers_maps_slices_to_nil_only() {
    // literalStore: null zeroes Interface, Pointer, Map, Slice; other kinds are left alone.
    let go = decode(
        r#"{"Image":"i","HostConfig":{"PidsLimit":5,"Init":true,"Sysctls":{"a":"b"},"Binds":["x"],
                "Memory":7,"BlkioWeight":3,"Privileged":true},
                "HostConfig":{"PidsLimit":null,"Init":null,"Sysctls":null,"Binds":null,
                "Memory":null,"BlkioWeight":null,"Privileged":null},"Image":null}"#,
    );
    assert_eq!(str_at(&go, "Image"), Some("i"));
    assert_eq!(at(&go, "HostConfig.PidsLimit").as_i64(), Ok(None));
    assert_eq!(bool_at(&go, "HostConfig.Init"), None);
    assert_eq!(at(&go, "HostConfig.Sysctls").is_nil(), Ok(true));
    assert_eq!(at(&go, "HostConfig.Binds").is_nil(), Ok(true));
    assert_eq!(at(&go, "HostConfig.Memory").as_i64(), Ok(Some(7)));
    assert_eq!(at(&go, "HostConfig.BlkioWeight").as_u64(), Ok(Some(3)));
    assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true));
}

#[test]
fn null_into_pointer_to_pointer_clears_the_outer_pointer() {
    // indirect(v, decodingNull) stops at the first settable pointer.
    let go = decode(r#"{"StopTimeout":5,"StopTimeout":null}"#);
    assert_eq!(at(&go, "StopTimeout").go(), Some(&Go::Ptr(None)));
    let go = decode(r#"{"StopTimeout":5}"#);
    assert_eq!(at(&go, "StopTimeout").as_i64(), Ok(Some(5)));
}

#[test]
fn top_level_null_is_the_zero_value() {
    // Decode(&v) with null into a struct leaves it unchanged.
    let go = decode("null");
    assert_eq!(str_at(&go, "Image"), Some(""));
    assert_eq!(at(&go, "HostConfig").is_nil(), Ok(true));
    assert_eq!(unmarshal(b" null ", &MOUNT_PTR), Ok(Go::Ptr(None)));
}

#[test]
fn strings_replace_invalid_utf8_and_surrogates_like_go() {
    // unquoteBytes: utf8.DecodeRune per byte, utf16.DecodeRune for \u pairs, else U+FFFD.
    let cases: &[(&[u8], &str)] = &[
        (br#""\ud83d\ude00""#, "\u{1F600}"),
        (br#""\ud800""#, "\u{FFFD}"),
        (br#""\ud800\u0041""#, "\u{FFFD}A"),
        (br#""\udc00\ud800\udc00""#, "\u{FFFD}\u{10000}"),
        (br#""\ud800\ud800\udc00""#, "\u{FFFD}\u{10000}"),
        (br#""\ud800\n""#, "\u{FFFD}\n"),
        (b"\"a\xffb\"", "a\u{FFFD}b"),
        (b"\"\xe2\x82\"", "\u{FFFD}\u{FFFD}"),
        (b"\"\xed\xa0\x80\"", "\u{FFFD}\u{FFFD}\u{FFFD}"),
        (b"\"\xc0\x80\"", "\u{FFFD}\u{FFFD}"),
        (b"\"\xf4\x90\x80\x80\"", "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),
        (b"\"\xe2\x82\xac\x7f\"", "\u{20AC}\u{7F}"),
        (
            br#""\"\\\/\b\f\n\r\t\u00e9""#,
            "\"\\/\u{8}\u{c}\n\r\t\u{e9}",
        ),
    ];
    for (json, want) in cases {
        let got = unmarshal(json, &Shape::String);
        assert_eq!(got, Ok(Go::String((*want).to_owned())), "{json:?}");
    }
}

#[test]
fn integers_parse_the_literal_as_written() {
    // literalStore: strconv.ParseInt / ParseUint on the literal text.
    assert_eq!(unmarshal(b"-0", &Shape::Int), Ok(Go::Int(0)));
    assert_eq!(
        unmarshal(b"-9223372036854775808", &Shape::Int),
        Ok(Go::Int(i64::MIN))
    );
    assert_eq!(
        unmarshal(b"9223372036854775807", &Shape::Int),
        Ok(Go::Int(i64::MAX))
    );
    assert_eq!(
        unmarshal(b"18446744073709551615", &Shape::Uint),
        Ok(Go::Uint(u64::MAX))
    );
    for (json, shape) in [
        (&b"9223372036854775808"[..], &Shape::Int),
        (b"-9223372036854775809", &Shape::Int),
        (b"1.0", &Shape::Int),
        (b"1e3", &Shape::Int),
        (b"18446744073709551616", &Shape::Uint),
        (b"-1", &Shape::Uint),
        (b"-0", &Shape::Uint),
    ] {
        let err = unmarshal(json, shape).expect_err("refused");
        assert!(
            matches!(err, Error::NumberRange { .. }),
            "{json:?}: {err:?}"
        );
    }
}

#[test]
fn floats_round_like_parse_float() {
    // strconv.ParseFloat(s, 64): correctly rounded, ±Inf is a range error, underflow is 0.
    let bits = |json: &[u8]| match unmarshal(json, &Shape::Float) {
        Ok(Go::Float(f)) => Some(f.to_bits()),
        _ => None,
    };
    assert_eq!(bits(b"-0"), Some(0x8000_0000_0000_0000));
    assert_eq!(bits(b"-1e-400"), Some(0x8000_0000_0000_0000));
    assert_eq!(bits(b"1e3"), Some(1000f64.to_bits()));
    assert_eq!(bits(b"1.7976931348623158e308"), Some(f64::MAX.to_bits()));
    assert_eq!(bits(b"4.9e-324"), Some(1));
    assert_eq!(
        bits(b"9007199254740993"),
        Some(9_007_199_254_740_992f64.to_bits())
    );
    for json in [&b"1e400"[..], b"-1e400", b"1.797693134862315808e308"] {
        assert!(matches!(
            unmarshal(json, &Shape::Float),
            Err(Error::NumberRange { .. })
        ));
    }
}

#[test]
fn type_mismatches_are_refused() {
    // Go records an UnmarshalTypeError and dockerd rejects the body.
    let cases: &[(&[u8], &str)] = &[
        (
            br#"{"HostConfig":{"Privileged":"true"}}"#,
            "HostConfig.Privileged",
        ),
        (
            br#"{"HostConfig":{"Privileged":1}}"#,
            "HostConfig.Privileged",
        ),
        (br#"{"Image":5}"#, "Image"),
        (br#"{"HostConfig":{"Binds":{}}}"#, "HostConfig.Binds"),
        (br#"{"HostConfig":{"Binds":"a"}}"#, "HostConfig.Binds"),
        (br#"{"HostConfig":[]}"#, "HostConfig"),
        (
            br#"{"HostConfig":{"Mounts":[{"Source":[]}]}}"#,
            "HostConfig.Mounts[0].Source",
        ),
        (br#"{"Labels":{"a":1}}"#, "Labels[\"a\"]"),
        (br#"{"Size":true}"#, "Size"),
        (b"[]", ""),
    ];
    for (json, want) in cases {
        match unmarshal(json, &CREATE) {
            Err(Error::TypeMismatch { path, .. }) => assert_eq!(path, *want),
            other => panic!("{json:?}: {other:?}"),
        }
    }
    assert_eq!(
        refuse(br#"{"HostConfig":{"Privileged":"yes"}}"#).to_string(),
        "type mismatch for field HostConfig.Privileged: expected bool, got string"
    );
    assert_eq!(
        refuse(br#"{"HostConfig":{"Memory":1.5}}"#).to_string(),
        "type mismatch for field HostConfig.Memory: number 1.5 does not fit int64"
    );
}

#[test]
fn syntax_is_go_scanner_syntax() {
    // scanner.go: RFC 8259 only.
    let invalid: &[&[u8]] = &[
        br#"{"Image":"a",}"#,
        br#"{"Cmd":["a",]}"#,
        br#"{"Cmd":[,"a"]}"#,
        br#"{"Image":"a"/*c*/}"#,
        br#"{"Size":NaN}"#,
        br#"{"Size":Infinity}"#,
        br#"{"Size":+1}"#,
        br#"{"Size":01}"#,
        br#"{"Size":1.}"#,
        br#"{"Size":.5}"#,
        br#"{"Size":1e}"#,
        br#"{"Size":-}"#,
        br#"{'Image':'a'}"#,
        br#"{Image:"a"}"#,
        br#"{"Image" "a"}"#,
        br#"{"Image":"\x41"}"#,
        br#"{"Image":"\u12"}"#,
        b"{\"Image\":\"a\tb\"}",
        b"\xef\xbb\xbf{}",
        br#"{"Spec":tru}"#,
        br#"{"Spec":[1,2,{"a":}]}"#,
    ];
    for json in invalid {
        let err = refuse(json);
        assert!(
            matches!(err, Error::Syntax { .. } | Error::UnexpectedEnd),
            "{:?}: {err:?}",
            String::from_utf8_lossy(json)
        );
    }
    assert_eq!(refuse(b""), Error::Empty);
    assert_eq!(refuse(b" \n\t\r "), Error::Empty);
    assert_eq!(refuse(br#"{"Image":"#), Error::UnexpectedEnd);
    assert_eq!(refuse(br#"{"Image":"a"#), Error::UnexpectedEnd);
    assert_eq!(
        refuse(br#"{"Image":"a",}"#).to_string(),
        "invalid JSON at byte 13: invalid character '}' looking for beginning of object key string"
    );
}

#[test]
fn trailing_whitespace_only() {
    // Go's Decoder would leave trailing data unread; we refuse anything but whitespace.
    assert!(unmarshal(b" {} \r\n\t", &CREATE).is_ok());
    assert_eq!(refuse(b"{} x"), Error::TrailingData { offset: 3 });
    assert_eq!(refuse(b"{}{}"), Error::TrailingData { offset: 2 });
    assert_eq!(refuse(b"{}}"), Error::TrailingData { offset: 2 });
    assert_eq!(
        unmarshal(b"12x", &Shape::Int),
        Err(Error::TrailingData { offset: 2 })
    );
}

#[test]
fn unknown_and_opaque_values_are_skipped_but_checked() {
    let go = decode(
        r#"{"Unknown":{"a":[1,{"b":null}],"c":"\u00e9"},"Spec":[true,{"x":-1.5e3}],"Image":"i"}"#,
    );
    assert_eq!(str_at(&go, "Image"), Some("i"));
    assert_eq!(at(&go, "Spec").go(), Some(&Go::Opaque));
    let go = decode(r#"{"Volumes":{"/data":{},"/x":null}}"#);
    assert_eq!(at(&go, "Volumes").entries().map(|e| e.len()), Ok(2));
}

#[test]
fn depth_limit() {
    static NESTED: Shape = Shape::Slice(&NESTED);
    let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(unmarshal(nest(MAX_DEPTH).as_bytes(), &NESTED).is_ok());
    assert!(unmarshal(nest(MAX_DEPTH).as_bytes(), &Shape::Opaque).is_ok());
    assert_eq!(
        unmarshal(nest(MAX_DEPTH + 1).as_bytes(), &NESTED),
        Err(Error::TooDeep { offset: MAX_DEPTH })
    );
    let deep = "[".repeat(1_000_000);
    assert_eq!(
        unmarshal(deep.as_bytes(), &Shape::Opaque),
        Err(Error::TooDeep { offset: MAX_DEPTH })
    );
    assert_eq!(
        refuse(format!(r#"{{"Spec":{}}}"#, nest(MAX_DEPTH)).as_bytes()).to_string(),
        "invalid JSON at byte 135: JSON nested too deeply (limit 128)"
    );
}

#[test]
fn value_budget() {
    static WIDE: Shape = Shape::Struct(&[
        Field {
            name: "A",
            shape: Shape::Struct(HOST_CONFIG_FIELDS),
        },
        Field {
            name: "B",
            shape: Shape::Struct(HOST_CONFIG_FIELDS),
        },
        Field {
            name: "C",
            shape: Shape::Struct(HOST_CONFIG_FIELDS),
        },
    ]);
    static MANY: Shape = Shape::Slice(&WIDE);
    let body = format!("[{}{{}}]", "{},".repeat(30_000));
    assert_eq!(unmarshal(body.as_bytes(), &MANY), Err(Error::TooLarge));
    assert!(unmarshal(b"[{},{}]", &MANY).is_ok());
}

#[test]
fn unsupported_shapes_are_refused() {
    static DUP: Shape = Shape::Struct(&[
        Field {
            name: "A",
            shape: Shape::Bool,
        },
        Field {
            name: "A",
            shape: Shape::Bool,
        },
    ]);
    static NON_ASCII: Shape = Shape::Struct(&[Field {
        name: "Größe",
        shape: Shape::Int,
    }]);
    static CYCLE_FIELDS: [Field; 1] = [Field {
        name: "C",
        shape: Shape::Struct(&CYCLE_FIELDS),
    }];
    static CYCLE: Shape = Shape::Struct(&CYCLE_FIELDS);
    static POINTER_CYCLE: Shape = Shape::Ptr(&POINTER_CYCLE);
    let unsupported = |json: &[u8], shape: &Shape| {
        matches!(unmarshal(json, shape), Err(Error::UnsupportedShape { .. }))
    };
    assert!(unsupported(br#"{"A":true}"#, &DUP));
    assert!(unmarshal("{\"Größe\":1}".as_bytes(), &NON_ASCII).is_ok());
    assert!(unsupported("{\"GRÖSSE\":1}".as_bytes(), &NON_ASCII));
    assert!(unsupported(b"{}", &CYCLE));
    assert!(unsupported(b"1", &POINTER_CYCLE));
    let nil = unmarshal(b"null", &POINTER_CYCLE).expect("null");
    assert_eq!(
        nil.view(&POINTER_CYCLE).deref().map(View::go),
        Err(AccessError::ShapeMismatch)
    );
}

#[test]
fn view_reports_inspector_mistakes() {
    let go = decode(r#"{"HostConfig":{"Privileged":true}}"#);
    let view = go.view(&CREATE);
    assert_eq!(
        view.path("HostConfig.Privilegd").map(View::go),
        Err(AccessError::NoSuchField {
            name: "Privilegd".to_owned()
        })
    );
    assert_eq!(
        view.path("HostConfig.Privileged").and_then(View::as_str),
        Err(AccessError::WrongShape {
            wanted: "string",
            found: "bool"
        })
    );
    assert!(view.path("Image.Name").is_err());
    assert_eq!(
        go.view(&MOUNT).field("Source").and_then(View::as_str),
        Err(AccessError::ShapeMismatch)
    );
    // Absent, not false: the pointer is nil.
    let go = decode("{}");
    assert_eq!(bool_at(&go, "HostConfig.Privileged"), None);
    assert_eq!(
        at(&go, "HostConfig.Binds").elements().map(|e| e.len()),
        Ok(0)
    );
}

#[test]
fn go_accessors_follow_pointers() {
    let go = decode(r#"{"HostConfig":{"PidsLimit":9,"Binds":["a"]},"StopTimeout":3}"#);
    let Go::Struct(fields) = &go else {
        panic!("struct")
    };
    let host = fields.get(4).and_then(Go::deref).expect("HostConfig");
    let Go::Struct(host) = host else {
        panic!("struct")
    };
    assert_eq!(host.get(5).and_then(Go::as_i64), Some(9));
    assert_eq!(host.first().and_then(Go::as_slice).map(<[_]>::len), Some(1));
    assert_eq!(fields.get(6).and_then(Go::as_i64), Some(3));
    assert_eq!(Go::Ptr(None).deref(), None);
}

#[test]
fn never_panics_on_mutated_input() {
    // xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }
    const SEEDS: &[&[u8]] = &[
            br#"{"Image":"alpine","Cmd":["sh","-c","x"],"Labels":{"a":"b"},"HostConfig":{"Binds":["/:/h"],"Privileged":true,"CapAdd":"ALL","Mounts":[{"Type":"bind","Source":"/","Target":"/h"}],"Devices":[null,{"Source":"/dev/kmsg"}],"PidsLimit":-1,"Memory":1e3,"Init":null,"Tmpfs":{"/t":{}},"Links":["a"]},"StopTimeout":10,"Spec":[1,"\ud800",{"x":null}]}"#,
            b"{\"\xe2\x84\xaaind\":\"\\u212a\",\"\xc5\xbfize\":-0,\"mode\":\"\xff\",\"MODE\":\"\\\"\"}",
            br#"[[[[[[[[[[]]]]]]]]]]"#,
        ];
    const TOKENS: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"\"",
        b"\\",
        b"\\u",
        b"d800",
        b"null",
        b"true",
        b"-",
        b"0",
        b"1e9",
        b".",
        b" ",
        b"\x00",
        b"\xff",
        b"\xe2\x84",
        b"\"HostConfig\":",
        b"\"Mounts\":[",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for round in 0..4000 {
        let mut input = SEEDS[round % SEEDS.len()].to_vec();
        for _ in 0..=rng.below(6) {
            let at = rng.below(input.len() + 1);
            match rng.below(4) {
                0 if at < input.len() => {
                    input.remove(at);
                }
                1 if at < input.len() => input[at] = u8::try_from(rng.below(256)).unwrap_or(0),
                2 => input.truncate(at),
                _ => {
                    let token = TOKENS[rng.below(TOKENS.len())];
                    input.splice(at..at, token.iter().copied());
                }
            }
        }
        for shape in [&CREATE, &HOST_CONFIG, &Shape::Opaque, &STRINGS] {
            if let Ok(go) = unmarshal(&input, shape) {
                accepted += 1;
                // What was accepted must decode the same way again.
                assert_eq!(unmarshal(&input, shape), Ok(go));
            }
        }
    }
    assert!(accepted > 100, "only {accepted} mutated inputs decoded");
}
