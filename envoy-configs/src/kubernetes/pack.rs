//! Files into ConfigMaps and Secrets, each under the API server's limit: the values of one
//! object may hold at most [`CONFIG_MAP_LIMIT`] bytes. A file is never split (Envoy reads
//! each whole), so a file over the limit is refused, saying what to do instead.

/// The most bytes the values of one ConfigMap or Secret may hold (Kubernetes' `MaxSecretSize`
/// and ConfigMap validation: 1 MiB).
pub const CONFIG_MAP_LIMIT: usize = 1 << 20;

/// One file of a volume: its key in the object, and its path in the volume (`sds/x.yaml` for
/// the key `sds.x.yaml`: keys may not hold a `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub key: String,
    pub path: String,
    pub bytes: Vec<u8>,
    /// Goes in `binaryData`.
    pub binary: bool,
}

impl File {
    pub fn text(name: &str, text: String) -> File {
        File {
            key: name.to_string(),
            path: name.to_string(),
            bytes: text.into_bytes(),
            binary: false,
        }
    }

    pub fn binary(name: &str, bytes: Vec<u8>) -> File {
        File {
            binary: true,
            bytes,
            ..File::text(name, String::new())
        }
    }

    /// The file `dir/name`, keyed `dir.name`.
    pub fn in_dir(dir: &str, name: &str, text: String) -> File {
        File {
            key: format!("{dir}.{name}"),
            path: format!("{dir}/{name}"),
            ..File::text(name, text)
        }
    }
}

/// One object's files, and its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub name: String,
    pub files: Vec<File>,
}

/// `files`, in their order, into as few objects as the limit allows when taken in order:
/// `base`, then `base-2`, `base-3`... No object when there is no file.
pub fn pack(base: &str, files: Vec<File>) -> Result<Vec<Packed>, String> {
    let mut packed: Vec<Packed> = Vec::new();
    let mut size = 0;
    for file in files {
        let len = file.bytes.len();
        if len > CONFIG_MAP_LIMIT {
            return Err(too_big(base, &file.path, len));
        }
        match packed.last_mut() {
            Some(last) if size + len <= CONFIG_MAP_LIMIT => {
                size += len;
                last.files.push(file);
            }
            _ => {
                size = len;
                let name = match packed.len() {
                    0 => base.to_string(),
                    n => format!("{base}-{}", n + 1),
                };
                packed.push(Packed {
                    name,
                    files: vec![file],
                });
            }
        }
    }
    Ok(packed)
}

fn too_big(object: &str, path: &str, len: usize) -> String {
    format!(
        "{object}: {path} is {len} bytes, over the {CONFIG_MAP_LIMIT} bytes (1 MiB) a ConfigMap \
         or Secret may hold, and Envoy reads it as one file: serve fewer services from one \
         Envoy (split the resources among several egresses, each with its own --name), or keep \
         the configuration on each machine with `extsvc generate --xds-dir` and `extsvc watch`"
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn file(name: &str, len: usize) -> File {
        File::text(name, "x".repeat(len))
    }

    fn names(packed: &[Packed]) -> Vec<(String, Vec<String>)> {
        let keys = |p: &Packed| p.files.iter().map(|f| f.key.clone()).collect();
        packed.iter().map(|p| (p.name.clone(), keys(p))).collect()
    }

    #[test]
    fn files_that_fit_share_one_object() {
        let packed = pack("e-xds", vec![file("a", 10), file("b", 20)]).unwrap();
        assert_eq!(
            names(&packed),
            [("e-xds".into(), vec!["a".into(), "b".into()])]
        );
        assert_eq!(pack("e-keys", vec![]).unwrap(), []);
    }

    #[test]
    fn files_over_the_limit_together_go_to_several_objects_in_order() {
        let half = CONFIG_MAP_LIMIT / 2;
        let packed = pack(
            "e-xds",
            vec![file("a", half), file("b", half), file("c", 1)],
        )
        .unwrap();
        assert_eq!(
            names(&packed),
            [
                ("e-xds".into(), vec!["a".into(), "b".into()]),
                ("e-xds-2".into(), vec!["c".into()]),
            ]
        );
    }

    #[test]
    fn a_file_over_the_limit_is_refused_with_its_size_and_what_to_do() {
        let error = pack("e-xds", vec![file("lds.yaml", CONFIG_MAP_LIMIT + 1)]).unwrap_err();
        assert!(
            error.starts_with("e-xds: lds.yaml is 1048577 bytes, over the 1048576"),
            "{error}"
        );
        assert!(error.contains("extsvc watch"), "{error}");
        assert!(pack("e-xds", vec![file("lds.yaml", CONFIG_MAP_LIMIT)]).is_ok());
    }

    #[test]
    fn a_file_in_a_directory_is_keyed_without_a_slash() {
        let f = File::in_dir("sds", "identity.yaml", String::new());
        assert_eq!(
            (f.key.as_str(), f.path.as_str()),
            ("sds.identity.yaml", "sds/identity.yaml")
        );
    }
}
