//! The shared PnP vectors: every message a device sends parses, and every request we render
//! has the element structure of the published samples for its service.

use std::collections::BTreeSet;
use std::path::PathBuf;

use pnp_appliance::domain::job::{Job, Output, Service};
use pnp_appliance::pnp::message::{self, DeviceMessage};
use pnp_appliance::pnp::xml::{self, Element};

fn vectors() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors");
    assert!(
        dir.is_dir(),
        "{} missing: the shared/ folder must sit beside the checkout",
        dir.display()
    );
    dir
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(vectors().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn device_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [vectors(), vectors().join("derived")] {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with("device-") && name.ends_with(".xml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_device_vector_parses() {
    let files = device_files();
    assert!(files.len() >= 8, "found only {files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let msg = message::parse_device_message(&bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        match msg {
            DeviceMessage::WorkRequest { request, .. } => {
                assert!(name.contains("work-request"), "{name}");
                assert!(!request.correlator.is_empty());
            }
            DeviceMessage::Response { result, .. } => {
                assert!(name.starts_with("device-response"), "{name}");
                assert!(
                    name.contains(&result.service_name),
                    "{name} parsed as {}",
                    result.service_name
                );
            }
            DeviceMessage::Fault(f) => assert!(name.contains("fault"), "{name}: {f:?}"),
        }
    }
}

#[test]
fn real_csr_device_info_gives_version_image_and_bootflash() {
    let DeviceMessage::Response { result: r, .. } = message::parse_device_message(&read(
        "device-response.device-info.all.csr1000v-17.3.4a.xml",
    ))
    .unwrap() else {
        panic!("not a response")
    };
    assert!(r.success);
    assert_eq!(r.service, Some(Service::DeviceInfo));
    let Output::DeviceInfo(info) = r.output else {
        panic!("no device-info output: {:?}", r.output)
    };
    assert_eq!(info.version.as_deref(), Some("17.3.4a"));
    assert_eq!(info.image_file.as_deref(), Some("bootflash:packages.conf"));
    assert_eq!(info.file_systems.len(), 3);
    // 64-bit sizes, bootflash picked out of several file systems.
    assert_eq!(info.bootflash_free(), Some(5_438_058_496));
}

#[test]
fn ios_3945_device_info_has_no_bootflash() {
    let DeviceMessage::Response { result: r, .. } =
        message::parse_device_message(&read("device-response.device-info.all.cisco3945.xml"))
            .unwrap()
    else {
        panic!("not a response")
    };
    let Output::DeviceInfo(info) = r.output else {
        panic!("no device-info output: {:?}", r.output)
    };
    assert!(info.version.is_some());
    assert_eq!(info.bootflash_free(), None);
    assert_eq!(info.file_systems[0].name, "flash0");
}

#[test]
fn real_work_request_carries_the_reload_reason() {
    let DeviceMessage::WorkRequest { udi, request: w } =
        message::parse_device_message(&read("device-work-request.csr1000v-17.3.reload-reason.xml"))
            .unwrap()
    else {
        panic!("not a work request")
    };
    assert_eq!(udi.serial, "99CWJ5DOLWQ");
    assert_eq!(udi.pid, "CSR1000V");
    let reason = w.reason.unwrap();
    assert_eq!(reason.message, "factory-reset");
    assert_eq!(reason.startup_config_present, Some(false));
    let DeviceMessage::WorkRequest { udi, request: w } =
        message::parse_device_message(&read("device-work-request.schema-sample.7206vxr.xml"))
            .unwrap()
    else {
        panic!("not a work request")
    };
    assert_eq!(udi.vid, "");
    assert!(w.reason.is_none());
}

#[test]
fn emulator_fault_has_text_and_no_correlator() {
    let DeviceMessage::Fault(f) = message::parse_device_message(&read(
        "derived/device-response.fault.nso-netsim-emulator.xml",
    ))
    .unwrap() else {
        panic!("not a fault")
    };
    assert!(!f.code.is_empty());
    assert!(!f.text.is_empty());
}

/// Every element path (`a/b/c`) of a tree, under the root.
fn paths(el: &Element, prefix: &str, out: &mut BTreeSet<String>) {
    for c in &el.children {
        let p = format!("{prefix}/{}", c.name);
        out.insert(p.clone());
        paths(c, &p, out);
    }
}

fn shape(xml_bytes: &[u8]) -> (BTreeSet<String>, String) {
    let root = xml::parse(xml_bytes).unwrap();
    let mut out = BTreeSet::new();
    paths(&root, "", &mut out);
    let ns = root
        .children
        .first()
        .and_then(|c| c.attr("xmlns"))
        .unwrap_or_default()
        .to_string();
    (out, ns)
}

#[test]
fn rendered_requests_follow_the_sample_shapes() {
    let udi = "PID:C1131-8PWB,VID:V01,SN:FGL2548L0AW";
    let cases: Vec<(Job, &str)> = vec![
        (
            Job::SetConfigRegister {
                value: "0x2102".into(),
            },
            "derived/peer-server-request.cli-config.ianz94.xml",
        ),
        (Job::WriteMemory, "server-request.cli-exec.xml"),
        (
            Job::DeviceInfo,
            "derived/peer-server-request.device-info.all.ianz94.xml",
        ),
        (
            Job::ImageInstall {
                file: "c1100-universalk9.17.12.03a.SPA.bin".into(),
                url: "http://198.51.100.1:8080/images/c1100-universalk9.17.12.03a.SPA.bin".into(),
                md5: "ac8c06a8431d26b723c92f0aa245bfe7".into(),
                destination: "bootflash:c1100-universalk9.17.12.03a.SPA.bin".into(),
            },
            "derived/peer-server-request.image-install.no-reload-element.ianz94.xml",
        ),
        (
            Job::FileTransfer {
                file: "g.tar".into(),
                url: "http://198.51.100.1:8080/files/g.tar".into(),
                destination: "bootflash:g.tar".into(),
            },
            "server-request.file-transfer.xml",
        ),
        (
            Job::ConfigUpgrade {
                file: "default.cfg".into(),
                url: "http://198.51.100.1:8080/configs/default.cfg".into(),
            },
            "derived/peer-server-request.config-upgrade.noReload.ianz94.xml",
        ),
        (
            Job::Backoff {
                seconds: 7825,
                reason: "take it easy".into(),
            },
            "server-request.backoff.callbackAfter.xml",
        ),
        (
            Job::Terminate {
                reason: "done".into(),
            },
            "derived/peer-server-request.backoff-terminate.greatsymphonia.xml",
        ),
    ];
    for (req, sample) in cases {
        let ours = message::render_request(udi, "CiscoPnP-1.0-X", &req);
        let (our_paths, our_ns) = shape(ours.as_bytes());
        let (sample_paths, sample_ns) = shape(&read(sample));
        assert_eq!(our_ns, sample_ns, "{sample}");
        assert_eq!(our_paths, sample_paths, "{sample}\nours:\n{ours}");
        let root = xml::parse(ours.as_bytes()).unwrap();
        assert_eq!(root.attr("udi"), Some(udi));
        assert_eq!(root.attr("xmlns"), Some("urn:cisco:pnp"));
        assert_eq!(root.children[0].attr("correlator"), Some("CiscoPnP-1.0-X"));
    }
    let bye = message::render_bye(udi, "C-1");
    let (p, ns) = shape(bye.as_bytes());
    let (sp, sns) = shape(&read("server-bye.schema-sample.xml"));
    assert_eq!((p, ns), (sp, sns));
}
