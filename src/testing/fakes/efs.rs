//! The EFS fake: access points with client-token idempotency and a state script.
//!
//! A new access point starts at the first state of the script (default
//! `["creating", "available"]`). Each DescribeAccessPoints of it reports its current
//! state, then moves it one step along; the last step is sticky. So the first describe
//! after CreateAccessPoint sees `creating`, the next `available`.
//! [`FakeEfs::set_state_script`] changes the script of access points created from now
//! on; [`FakeEfs::set_access_point_state`] puts one at a state and takes it off its
//! script (e.g. `error`). DeleteAccessPoint removes it at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{aws_err, lock, ops, Env, HEX};
use crate::error::{AwsError, AwsErrorKind};
use crate::managers::efs::{AccessPointInfo, AccessPointSpec, Efs};
use crate::managers::Page;

const SERVICE: &str = "efs";

/// An access point as the fake knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeAccessPoint {
    pub id: String,
    pub spec: AccessPointSpec,
    /// The lower-case LifeCycleState.
    pub state: String,
    script: Option<(Vec<&'static str>, usize)>,
}

struct State {
    points: Vec<FakeAccessPoint>,
    tokens: HashMap<String, String>,
    script: Vec<&'static str>,
}

/// The in-memory EFS.
pub struct FakeEfs {
    env: Arc<Env>,
    state: Mutex<State>,
}

impl FakeEfs {
    pub const SERVICE: &'static str = SERVICE;
    pub const CREATE_ACCESS_POINT: &'static str = ops::CREATE_ACCESS_POINT;
    pub const DESCRIBE_ACCESS_POINTS: &'static str = ops::DESCRIBE_ACCESS_POINTS;
    pub const DELETE_ACCESS_POINT: &'static str = ops::DELETE_ACCESS_POINT;

    /// A standalone fake reporting to `faults`.
    pub fn new(faults: Arc<super::Faults>) -> Self {
        FakeEfs::with_env(Env::new(faults))
    }

    pub(crate) fn with_env(env: Arc<Env>) -> Self {
        FakeEfs {
            env,
            state: Mutex::new(State {
                points: Vec::new(),
                tokens: HashMap::new(),
                script: vec!["creating", "available"],
            }),
        }
    }

    /// The states of access points created from now on. An empty script is ignored.
    pub fn set_state_script(&self, states: Vec<&'static str>) {
        if !states.is_empty() {
            lock(&self.state).script = states;
        }
    }

    /// Puts an access point at `state` and takes it off its script. False when missing.
    pub fn set_access_point_state(&self, id: &str, state: &str) -> bool {
        let mut st = lock(&self.state);
        match st.points.iter_mut().find(|p| p.id == id) {
            Some(p) => {
                p.state = state.to_string();
                p.script = None;
                true
            }
            None => false,
        }
    }

    /// Every existing access point, in creation order.
    pub fn access_points(&self) -> Vec<FakeAccessPoint> {
        lock(&self.state).points.clone()
    }
}

#[async_trait]
impl Efs for FakeEfs {
    async fn create_access_point(&self, spec: &AccessPointSpec) -> Result<String, AwsError> {
        const OP: &str = ops::CREATE_ACCESS_POINT;
        self.env.enter(SERVICE, OP).await?;
        let bad = |m: &str| aws_err(SERVICE, OP, AwsErrorKind::Invalid, "ValidationException", m);
        if spec.client_token.is_empty() || spec.client_token.len() > 64 {
            return Err(bad("ClientToken must be 1 to 64 characters."));
        }
        if spec.file_system_id.is_empty() {
            return Err(bad("FileSystemId must not be empty."));
        }
        if !spec.path.starts_with('/') || spec.path.len() > 100 {
            return Err(bad(
                "RootDirectory.Path must be an absolute path of at most 100 characters.",
            ));
        }
        if spec.permissions.is_empty() || !spec.permissions.chars().all(|c| ('0'..='7').contains(&c)) {
            return Err(bad("Permissions must be octal."));
        }
        let mut st = lock(&self.state);
        if let Some(id) = st.tokens.get(&spec.client_token) {
            if let Some(p) = st.points.iter().find(|p| &p.id == id) {
                if p.spec != *spec {
                    return Err(aws_err(
                        SERVICE,
                        OP,
                        AwsErrorKind::Invalid,
                        "IdempotentParameterMismatch",
                        "The client token was already used with other parameters.",
                    ));
                }
                return Ok(p.id.clone());
            }
        }
        let id = format!("fsap-{}", super::random_from(HEX, 17));
        let script = st.script.clone();
        st.points.push(FakeAccessPoint {
            id: id.clone(),
            spec: spec.clone(),
            state: script[0].to_string(),
            script: Some((script, 0)),
        });
        st.tokens.insert(spec.client_token.clone(), id.clone());
        Ok(id)
    }

    async fn access_point_state(&self, access_point_id: &str) -> Result<Option<String>, AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_ACCESS_POINTS).await?;
        let mut st = lock(&self.state);
        let Some(p) = st.points.iter_mut().find(|p| p.id == access_point_id) else {
            return Ok(None);
        };
        let seen = p.state.clone();
        if let Some((script, step)) = p.script.take() {
            let next = (step + 1).min(script.len() - 1);
            p.state = script[next].to_string();
            p.script = Some((script, next));
        }
        Ok(Some(seen))
    }

    async fn delete_access_point(&self, access_point_id: &str) -> Result<(), AwsError> {
        const OP: &str = ops::DELETE_ACCESS_POINT;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        let before = st.points.len();
        st.points.retain(|p| p.id != access_point_id);
        if st.points.len() == before {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::NotFound,
                "AccessPointNotFound",
                format!("Access point '{access_point_id}' does not exist."),
            ));
        }
        Ok(())
    }

    async fn access_points_at(&self, file_system_id: &str, path: &str) -> Result<Vec<String>, AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_ACCESS_POINTS).await?;
        Ok(lock(&self.state)
            .points
            .iter()
            .filter(|p| p.spec.file_system_id == file_system_id && p.spec.path == path)
            .map(|p| p.id.clone())
            .collect())
    }

    async fn file_system_state(&self, _file_system_id: &str) -> Result<String, AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_FILE_SYSTEMS).await?;
        Ok("available".to_string())
    }

    async fn list_access_points_page(
        &self,
        file_system_id: &str,
        token: Option<&str>,
    ) -> Result<Page<AccessPointInfo>, AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_ACCESS_POINTS).await?;
        let items = lock(&self.state)
            .points
            .iter()
            .filter(|p| p.spec.file_system_id == file_system_id)
            .map(|p| {
                (
                    p.id.clone(),
                    AccessPointInfo {
                        id: p.id.clone(),
                        path: p.spec.path.clone(),
                        state: p.state.clone(),
                    },
                )
            })
            .collect();
        Ok(self.env.page(items, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Faults;

    fn spec(token: &str) -> AccessPointSpec {
        AccessPointSpec {
            file_system_id: "fs-1".into(),
            uid: 1000,
            gid: 1000,
            path: "/foundry-instances/u".into(),
            owner_uid: 1000,
            owner_gid: 1000,
            permissions: "755".into(),
            tags: vec![],
            client_token: token.into(),
        }
    }

    #[tokio::test]
    async fn access_point_lifecycle() {
        let efs = FakeEfs::new(Arc::new(Faults::new()));
        let id = efs.create_access_point(&spec("t1")).await.unwrap();
        assert!(id.starts_with("fsap-") && id.len() == 22);
        assert_eq!(efs.create_access_point(&spec("t1")).await.unwrap(), id);
        assert_eq!(efs.access_points().len(), 1);
        assert_eq!(efs.access_point_state(&id).await.unwrap().as_deref(), Some("creating"));
        assert_eq!(efs.access_point_state(&id).await.unwrap().as_deref(), Some("available"));
        assert_eq!(efs.access_point_state(&id).await.unwrap().as_deref(), Some("available"));
        efs.delete_access_point(&id).await.unwrap();
        assert_eq!(efs.access_point_state(&id).await.unwrap(), None);
        assert_eq!(
            efs.delete_access_point(&id).await.unwrap_err().kind,
            AwsErrorKind::NotFound
        );
        assert_eq!(
            efs.create_access_point(&spec("")).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
    }

    #[tokio::test]
    async fn state_can_be_driven() {
        let efs = FakeEfs::new(Arc::new(Faults::new()));
        efs.set_state_script(vec!["creating"]);
        let id = efs.create_access_point(&spec("t")).await.unwrap();
        assert_eq!(efs.access_point_state(&id).await.unwrap().as_deref(), Some("creating"));
        assert_eq!(efs.access_point_state(&id).await.unwrap().as_deref(), Some("creating"));
        assert!(efs.set_access_point_state(&id, "error"));
        assert_eq!(efs.access_point_state(&id).await.unwrap().as_deref(), Some("error"));
    }
}
