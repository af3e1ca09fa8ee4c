//! CloudFront's `ListDistributions` (rest-xml, 2020-05-31): the `DistributionList` with every
//! element the model requires of a summary, one element newer than most parsers know
//! (`ConnectionMode`), `MaxItems` checked (1 to 100), and pages cut at the smaller of
//! `MaxItems` and the account's `list_page`, continued by an opaque `NextMarker`.

use axum::http::StatusCode;

use super::data::{self, DAY};
use super::wire::{self, AwsError, CLOUDFRONT_NS, xml_escape};
use super::{SimAccount, SimDistribution};

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::new(StatusCode::BAD_REQUEST, "InvalidArgument", message)
}

/// The opaque marker of the page starting at the distribution `id`.
pub fn marker(id: &str) -> String {
    wire::seal(&["dist".into(), id.into()])
}

/// `ListDistributions` for `account` with the request's query pairs.
pub fn list_distributions(account: &SimAccount, query: &[(String, String)]) -> Result<String, AwsError> {
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let max_items = match get("MaxItems").filter(|v| !v.is_empty()) {
        None => 100,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => return Err(invalid(format!("Invalid value for MaxItems: {v}. It must be a number from 1 to 100."))),
        },
    };
    let marker_in = get("Marker").unwrap_or_default();
    let first = if marker_in.is_empty() {
        0
    } else {
        let fields = wire::open(marker_in).ok_or_else(|| invalid("The parameter Marker is invalid."))?;
        let [kind, id] = fields.as_slice() else { return Err(invalid("The parameter Marker is invalid.")) };
        if kind != "dist" {
            return Err(invalid("The parameter Marker is invalid."));
        }
        account
            .distributions
            .iter()
            .position(|d| d.id == *id)
            .ok_or_else(|| invalid("The parameter Marker is invalid."))?
    };
    let page = max_items.min(account.list_page.max(1));
    let shown = &account.distributions[first.min(account.distributions.len())..];
    let (shown, rest) = shown.split_at(page.min(shown.len()));
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DistributionList xmlns=\"{CLOUDFRONT_NS}\"><Marker>{}</Marker>",
        xml_escape(marker_in)
    );
    if let Some(next) = rest.first() {
        xml.push_str(&format!("<NextMarker>{}</NextMarker>", marker(&next.id)));
    }
    xml.push_str(&format!(
        "<MaxItems>{max_items}</MaxItems><IsTruncated>{}</IsTruncated><Quantity>{}</Quantity>",
        !rest.is_empty(),
        shown.len()
    ));
    if !shown.is_empty() {
        xml.push_str("<Items>");
        for d in shown {
            summary(account, d, &mut xml);
        }
        xml.push_str("</Items>");
    }
    xml.push_str("</DistributionList>");
    Ok(xml)
}

fn summary(account: &SimAccount, d: &SimDistribution, xml: &mut String) {
    let id = xml_escape(&d.id);
    // A fixed moment derived from the distribution: when it was last changed.
    let modified =
        account.history_from.saturating_mul(DAY).saturating_add((data::salt(&d.id) % (30 * DAY as u64)) as i64);
    let modified = data::iso(modified).replace('Z', ".802Z");
    let aliases = if d.aliases.is_empty() {
        "<Aliases><Quantity>0</Quantity></Aliases>".to_owned()
    } else {
        let items: String = d.aliases.iter().map(|a| format!("<CNAME>{}</CNAME>", xml_escape(a))).collect();
        format!("<Aliases><Quantity>{}</Quantity><Items>{items}</Items></Aliases>", d.aliases.len())
    };
    let origin = format!("origin-{}", d.id.to_lowercase());
    let certificate = if d.aliases.is_empty() {
        "<ViewerCertificate><CloudFrontDefaultCertificate>true</CloudFrontDefaultCertificate><SSLSupportMethod>vip</SSLSupportMethod><MinimumProtocolVersion>TLSv1</MinimumProtocolVersion><CertificateSource>cloudfront</CertificateSource></ViewerCertificate>".to_owned()
    } else {
        format!(
            "<ViewerCertificate><CloudFrontDefaultCertificate>false</CloudFrontDefaultCertificate><ACMCertificateArn>arn:aws:acm:us-east-1:{0}:certificate/sim-{1}</ACMCertificateArn><SSLSupportMethod>sni-only</SSLSupportMethod><MinimumProtocolVersion>TLSv1.2_2021</MinimumProtocolVersion><Certificate>arn:aws:acm:us-east-1:{0}:certificate/sim-{1}</Certificate><CertificateSource>acm</CertificateSource></ViewerCertificate>",
            account.account_id,
            d.id.to_lowercase()
        )
    };
    xml.push_str(&format!(
        "<DistributionSummary><Id>{id}</Id><ARN>arn:aws:cloudfront::{account}:distribution/{id}</ARN><Status>Deployed</Status><LastModifiedTime>{modified}</LastModifiedTime><DomainName>{domain}</DomainName>{aliases}\
<Origins><Quantity>1</Quantity><Items><Origin><Id>{origin}</Id><DomainName>{origin}.s3.us-east-1.amazonaws.com</DomainName><OriginPath></OriginPath><CustomHeaders><Quantity>0</Quantity></CustomHeaders><S3OriginConfig><OriginAccessIdentity></OriginAccessIdentity></S3OriginConfig><ConnectionAttempts>3</ConnectionAttempts><ConnectionTimeout>10</ConnectionTimeout><OriginShield><Enabled>false</Enabled></OriginShield><OriginAccessControlId></OriginAccessControlId></Origin></Items></Origins>\
<OriginGroups><Quantity>0</Quantity></OriginGroups>\
<DefaultCacheBehavior><TargetOriginId>{origin}</TargetOriginId><TrustedSigners><Enabled>false</Enabled><Quantity>0</Quantity></TrustedSigners><TrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></TrustedKeyGroups><ViewerProtocolPolicy>redirect-to-https</ViewerProtocolPolicy><AllowedMethods><Quantity>2</Quantity><Items><Method>HEAD</Method><Method>GET</Method></Items><CachedMethods><Quantity>2</Quantity><Items><Method>HEAD</Method><Method>GET</Method></Items></CachedMethods></AllowedMethods><SmoothStreaming>false</SmoothStreaming><Compress>true</Compress><LambdaFunctionAssociations><Quantity>0</Quantity></LambdaFunctionAssociations><FunctionAssociations><Quantity>0</Quantity></FunctionAssociations><FieldLevelEncryptionId></FieldLevelEncryptionId><CachePolicyId>658327ea-f89d-4fab-a63d-7e88639e58f6</CachePolicyId></DefaultCacheBehavior>\
<CacheBehaviors><Quantity>0</Quantity></CacheBehaviors><CustomErrorResponses><Quantity>0</Quantity></CustomErrorResponses>\
<Comment>{comment}</Comment><PriceClass>PriceClass_All</PriceClass><Enabled>{enabled}</Enabled>{certificate}\
<Restrictions><GeoRestriction><RestrictionType>none</RestrictionType><Quantity>0</Quantity></GeoRestriction></Restrictions><WebACLId></WebACLId><HttpVersion>http2</HttpVersion><IsIPV6Enabled>true</IsIPV6Enabled><Staging>{staging}</Staging><ConnectionMode>direct</ConnectionMode></DistributionSummary>",
        account = account.account_id,
        domain = xml_escape(&d.domain_name),
        comment = xml_escape(&d.comment),
        enabled = d.enabled,
        staging = d.staging,
    ));
}
