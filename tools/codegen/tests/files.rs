//! Writing and checking the generated files: the check names every file
//! that differs, is missing, or is left over in a generated directory.

use std::path::PathBuf;

use tourcast_codegen::files::{GeneratedFile, sync};

fn scratch() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "tourcast-codegen-files-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    dir
}

fn file(path: &str, content: &str) -> GeneratedFile {
    GeneratedFile {
        path: path.into(),
        content: content.into(),
    }
}

#[test]
fn check_names_stale_missing_and_leftover_files_and_write_fixes_them() {
    let root = scratch();
    std::fs::write(root.join("schemas/a.schema.json"), "old\n").unwrap();
    std::fs::write(root.join("schemas/same.schema.json"), "same\n").unwrap();
    std::fs::write(root.join("schemas/gone.schema.json"), "{}\n").unwrap();
    let generated = [
        file("schemas/a.schema.json", "new\n"),
        file("schemas/same.schema.json", "same\n"),
        file("bindings/types/B.ts", "export type B = string;\n"),
    ];

    let checked = sync(&root, &generated, true).unwrap();
    assert_eq!(
        checked.stale,
        [
            "schemas/a.schema.json",
            "bindings/types/B.ts",
            "schemas/gone.schema.json"
        ]
    );
    assert!(checked.written.is_empty() && checked.removed.is_empty());
    // The check changes nothing.
    assert_eq!(
        std::fs::read_to_string(root.join("schemas/a.schema.json")).unwrap(),
        "old\n"
    );

    let written = sync(&root, &generated, false).unwrap();
    assert_eq!(
        written.written,
        ["schemas/a.schema.json", "bindings/types/B.ts"]
    );
    assert_eq!(written.removed, ["schemas/gone.schema.json"]);
    assert!(sync(&root, &generated, true).unwrap().stale.is_empty());
    assert_eq!(
        std::fs::read_to_string(root.join("bindings/types/B.ts")).unwrap(),
        "export type B = string;\n"
    );
    std::fs::remove_dir_all(root).unwrap();
}
