/*
 * The odata connector's $metadata reader (connectors/odata/
 * dw_odata_metadata.c): SAP CAP's document as the test server serves it, a
 * Dataverse-shaped one (schema alias, base types, alternate keys declared in
 * an Annotations element, type definitions, enums, complex types), key
 * matching, and documents the reader must refuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/odata/dw_odata_int.h"
#include "connectors/odata/dw_odata_metadata.h"
#include "tests/unit/common/dw_cunit.h"

static const char cap_doc[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
    "<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n"
    "  <edmx:Reference Uri=\"https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1.xml\">\n"
    "    <edmx:Include Alias=\"Core\" Namespace=\"Org.OData.Core.V1\"/>\n"
    "  </edmx:Reference>\n"
    "  <edmx:DataServices>\n"
    "    <Schema Namespace=\"DataService\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n"
    "      <Annotation Term=\"Core.Links\"><Collection><Record>"
    "<PropertyValue Property=\"rel\" String=\"author\"/></Record></Collection></Annotation>\n"
    "      <EntityContainer Name=\"EntityContainer\">\n"
    "        <EntitySet Name=\"Accounts\" EntityType=\"DataService.Accounts\"/>\n"
    "        <EntitySet Name=\"Orders\" EntityType=\"DataService.Orders\">\n"
    "          <NavigationPropertyBinding Path=\"parent\" Target=\"Accounts\"/>\n"
    "        </EntitySet>\n"
    "        <EntitySet Name=\"Lines\" EntityType=\"DataService.Lines\"/>\n"
    "      </EntityContainer>\n"
    "      <EntityType Name=\"Accounts\">\n"
    "        <Key><PropertyRef Name=\"account_no\"/></Key>\n"
    "        <Property Name=\"account_no\" Type=\"Edm.String\" MaxLength=\"80\" Nullable=\"false\"/>\n"
    "        <Property Name=\"name\" Type=\"Edm.String\" MaxLength=\"100\" Nullable=\"false\"/>\n"
    "        <Property Name=\"credit\" Type=\"Edm.Decimal\" Precision=\"12\" Scale=\"2\"/>\n"
    "      </EntityType>\n"
    "      <EntityType Name=\"Orders\">\n"
    "        <Key>\n          <PropertyRef Name=\"ID\"/>\n        </Key>\n"
    "        <Property Name=\"ID\" Type=\"Edm.Int32\" Nullable=\"false\"/>\n"
    "        <NavigationProperty Name=\"parent\" Type=\"DataService.Accounts\">\n"
    "          <ReferentialConstraint Property=\"parent_account_no\" ReferencedProperty=\"account_no\"/>\n"
    "        </NavigationProperty>\n"
    "        <Property Name=\"parent_account_no\" Type=\"Edm.String\" MaxLength=\"80\"/>\n"
    "        <Property Name=\"at\" Type=\"Edm.DateTimeOffset\" Precision=\"7\"/>\n"
    "      </EntityType>\n"
    "      <EntityType Name=\"Lines\">\n"
    "        <Key><PropertyRef Name=\"order_ID\"/><PropertyRef Name=\"line_code\"/></Key>\n"
    "        <Property Name=\"order_ID\" Type=\"Edm.Int32\" Nullable=\"false\"/>\n"
    "        <Property Name=\"line_code\" Type=\"Edm.String\" Nullable=\"false\"/>\n"
    "        <Property Name=\"qty\" Type=\"Edm.Int16\"/>\n"
    "      </EntityType>\n"
    "      <Annotations Target=\"DataService.Things/ID\">\n"
    "        <Annotation Term=\"Core.ComputedDefaultValue\" Bool=\"true\"/>\n"
    "      </Annotations>\n"
    "    </Schema>\n"
    "  </edmx:DataServices>\n"
    "</edmx:Edmx>\n";

/* Dataverse's shape: an alias, a base type, alternate keys in Annotations. */
static const char dv_doc[] =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
    "<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">"
    "<edmx:DataServices>"
    "<Schema Namespace=\"Microsoft.Dynamics.CRM\" Alias=\"mscrm\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">"
    "<!-- a comment with <tags> & stuff -->"
    "<TypeDefinition Name=\"Money\" UnderlyingType=\"Edm.Decimal\"/>"
    "<EnumType Name=\"Color\"><Member Name=\"Red\" Value=\"1\"/></EnumType>"
    "<ComplexType Name=\"Address\"><Property Name=\"street\" Type=\"Edm.String\"/></ComplexType>"
    "<EntityType Name=\"crmbaseentity\" Abstract=\"true\"/>"
    "<EntityType Name=\"account\" BaseType=\"mscrm.crmbaseentity\">"
    "<Key><PropertyRef Name=\"accountid\"/></Key>"
    "<Property Name=\"accountid\" Type=\"Edm.Guid\"/>"
    "<Property Name=\"accountnumber\" Type=\"Edm.String\"/>"
    "<Property Name=\"revenue\" Type=\"mscrm.Money\"/>"
    "<Property Name=\"color\" Type=\"mscrm.Color\"/>"
    "<Property Name=\"address\" Type=\"mscrm.Address\"/>"
    "<Property Name=\"tags\" Type=\"Collection(Edm.String)\"/>"
    "<Property Name=\"big\" Type=\"Edm.Int64\"/>"
    "<Property Name=\"note&amp;x\" Type=\"Edm.String\"/>"
    "<NavigationProperty Name=\"parentaccountid\" Type=\"mscrm.account\"/>"
    "</EntityType>"
    "<EntityType Name=\"specialaccount\" BaseType=\"mscrm.account\">"
    "<Property Name=\"special\" Type=\"Edm.Boolean\"/>"
    "</EntityType>"
    "<EntityContainer Name=\"System\">"
    "<EntitySet Name=\"accounts\" EntityType=\"Microsoft.Dynamics.CRM.account\"/>"
    "<EntitySet Name=\"specials\" EntityType=\"mscrm.specialaccount\"/>"
    "</EntityContainer>"
    "<Annotations Target=\"mscrm.account\">"
    "<Annotation Term=\"OData.Community.Keys.V1.AlternateKeys\"><Collection>"
    "<Record Type=\"OData.Community.Keys.V1.AlternateKey\"><PropertyValue Property=\"Key\"><Collection>"
    "<Record Type=\"OData.Community.Keys.V1.PropertyRef\"><PropertyValue Property=\"Alias\" String=\"accountnumber\"/>"
    "<PropertyValue Property=\"Name\" PropertyPath=\"accountnumber\"/></Record>"
    "</Collection></PropertyValue></Record>"
    "<Record Type=\"OData.Community.Keys.V1.AlternateKey\"><PropertyValue Property=\"Key\"><Collection>"
    "<Record><PropertyValue Property=\"Name\" PropertyPath=\"accountnumber\"/></Record>"
    "<Record><PropertyValue Property=\"Name\" PropertyPath=\"big\"/></Record>"
    "</Collection></PropertyValue></Record>"
    "</Collection></Annotation>"
    "</Annotations>"
    "</Schema>"
    "</edmx:DataServices>"
    "</edmx:Edmx>";

static struct dw_odata_metadata *parse_ok(const char *doc)
{
    struct dw_odata_metadata *m = NULL;
    struct dw_error err;

    dw_error_clear(&err);
    if (dw_odata_metadata_parse(doc, strlen(doc), &m, &err) != DW_OK)
        fprintf(stderr, "\n    parse: %s\n", err.message);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    return m;
}

static void expect_bad(const char *doc, const char *needle)
{
    struct dw_odata_metadata *m = NULL;
    struct dw_error err;

    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_odata_metadata_parse(doc, strlen(doc), &m, &err), DW_ERR_PROTOCOL);
    CU_ASSERT_PTR_NULL(m);
    DW_ASSERT_CONTAINS(err.message, needle);
}

static void test_cap(void)
{
    struct dw_odata_metadata *m = parse_ok(cap_doc);
    const struct dw_odata_set *acc, *ord, *lin;
    const struct dw_odata_property *p;

    CU_ASSERT_EQUAL(m->nsets, 3);
    acc = dw_odata_metadata_set(m, "Accounts");
    ord = dw_odata_metadata_set(m, "Orders");
    lin = dw_odata_metadata_set(m, "Lines");
    CU_ASSERT_PTR_NOT_NULL_FATAL(acc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ord);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lin);
    CU_ASSERT_PTR_NULL(dw_odata_metadata_set(m, "accounts"));   /* case-sensitive */
    DW_ASSERT_STREQ(acc->type, "DataService.Accounts");
    CU_ASSERT_EQUAL(acc->nprops, 3);
    CU_ASSERT_EQUAL_FATAL(acc->nkey, 1);
    DW_ASSERT_STREQ(acc->key[0]->name, "account_no");
    p = dw_odata_set_property(acc, "credit");
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->kind, DW_ODATA_DECIMAL);
    p = dw_odata_set_property(ord, "ID");
    CU_ASSERT_EQUAL(p->kind, DW_ODATA_INT);
    CU_ASSERT_EQUAL(p->max, INT32_MAX);
    CU_ASSERT_EQUAL(dw_odata_set_property(ord, "at")->kind, DW_ODATA_DATETIMEOFFSET);
    CU_ASSERT_TRUE(dw_odata_set_has_nav(ord, "parent"));
    CU_ASSERT_FALSE(dw_odata_set_has_nav(ord, "parent_account_no"));
    CU_ASSERT_PTR_NULL(dw_odata_set_property(ord, "parent"));
    CU_ASSERT_EQUAL_FATAL(lin->nkey, 2);
    DW_ASSERT_STREQ(lin->key[0]->name, "order_ID");
    DW_ASSERT_STREQ(lin->key[1]->name, "line_code");
    CU_ASSERT_EQUAL(dw_odata_set_property(lin, "qty")->max, INT16_MAX);
    dw_odata_metadata_free(m);
}

static void test_dataverse_shape(void)
{
    struct dw_odata_metadata *m = parse_ok(dv_doc);
    const struct dw_odata_set *acc = dw_odata_metadata_set(m, "accounts");
    const struct dw_odata_set *sp = dw_odata_metadata_set(m, "specials");

    CU_ASSERT_PTR_NOT_NULL_FATAL(acc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
    DW_ASSERT_STREQ(acc->type, "Microsoft.Dynamics.CRM.account");
    CU_ASSERT_EQUAL(dw_odata_set_property(acc, "accountid")->kind, DW_ODATA_GUID);
    CU_ASSERT_EQUAL(dw_odata_set_property(acc, "revenue")->kind, DW_ODATA_DECIMAL);
    CU_ASSERT_EQUAL(dw_odata_set_property(acc, "color")->kind, DW_ODATA_ENUM);
    CU_ASSERT_EQUAL(dw_odata_set_property(acc, "address")->kind, DW_ODATA_OTHER);
    CU_ASSERT_EQUAL(dw_odata_set_property(acc, "tags")->kind, DW_ODATA_OTHER);
    CU_ASSERT_PTR_NOT_NULL(dw_odata_set_property(acc, "note&x"));   /* &amp; decoded */
    CU_ASSERT_PTR_NULL(dw_odata_set_property(acc, "street"));        /* a complex type's */
    CU_ASSERT_TRUE(dw_odata_set_has_nav(acc, "parentaccountid"));
    CU_ASSERT_EQUAL_FATAL(acc->naltkeys, 2);
    CU_ASSERT_EQUAL(acc->altkeys[0].n, 1);
    DW_ASSERT_STREQ(acc->altkeys[0].names[0], "accountnumber");
    CU_ASSERT_EQUAL(acc->altkeys[1].n, 2);
    /* the derived type inherits properties, key and alternate keys */
    CU_ASSERT_PTR_NOT_NULL(dw_odata_set_property(sp, "special"));
    CU_ASSERT_PTR_NOT_NULL(dw_odata_set_property(sp, "accountnumber"));
    CU_ASSERT_EQUAL_FATAL(sp->nkey, 1);
    DW_ASSERT_STREQ(sp->key[0]->name, "accountid");
    CU_ASSERT_EQUAL(sp->naltkeys, 2);
    {
        const struct dw_odata_altkey *alt;
        const char *k1[] = {"accountid"};
        const char *k2[] = {"accountnumber"};
        const char *k3[] = {"big", "accountnumber"};
        const char *k4[] = {"big"};
        const char *k5[] = {"accountnumber", "accountnumber"};

        CU_ASSERT_EQUAL(dw_odata_key_match(acc, k1, 1, &alt), 1);
        CU_ASSERT_EQUAL(dw_odata_key_match(acc, k2, 1, &alt), 2);
        CU_ASSERT_PTR_EQUAL(alt, &acc->altkeys[0]);
        CU_ASSERT_EQUAL(dw_odata_key_match(acc, k3, 2, &alt), 2);
        CU_ASSERT_PTR_EQUAL(alt, &acc->altkeys[1]);
        CU_ASSERT_EQUAL(dw_odata_key_match(acc, k4, 1, &alt), 0);
        CU_ASSERT_EQUAL(dw_odata_key_match(acc, k5, 2, &alt), 0);
    }
    dw_odata_metadata_free(m);
}

static void test_key_predicate(void)
{
    struct dw_odata_metadata *m = parse_ok(dv_doc);
    struct dw_odata_metadata *c = parse_ok(cap_doc);
    const struct dw_odata_set *acc = dw_odata_metadata_set(m, "accounts");
    const struct dw_odata_set *lin = dw_odata_metadata_set(c, "Lines");
    const char *cols1[] = {"accountnumber", "name"};
    const char *vals1[] = {"A 1", "x"};
    const char *cols2[] = {"line_code", "order_ID"};
    const char *vals2[] = {"it's", "7"};
    const char *cols3[] = {"accountid"};
    const char *vals3[] = {"01234567-89ab-cdef-0123-456789abcdef"};
    const char *cols4[] = {"name"};
    struct dw_target_op op = {.kind = DW_OP_UPSERT, .nkey = 1, .ncolumns = 2, .columns = cols1,
                              .values = vals1, .map = "m"};
    struct dw_buf b;
    struct dw_error err;

    dw_buf_init(&b);
    dw_error_clear(&err);
    CU_ASSERT_EQUAL(dw_odata_key_predicate(&b, acc, &op, &err), DW_OK);
    DW_ASSERT_STREQ(b.data, "(accountnumber='A%201')");   /* alternate key: named */
    dw_buf_reset(&b);
    op.columns = cols2;
    op.values = vals2;
    op.nkey = 2;
    CU_ASSERT_EQUAL(dw_odata_key_predicate(&b, lin, &op, &err), DW_OK);
    DW_ASSERT_STREQ(b.data, "(order_ID=7,line_code='it''s')");   /* the entity's key order */
    dw_buf_reset(&b);
    op.columns = cols3;
    op.values = vals3;
    op.nkey = 1;
    op.ncolumns = 1;
    CU_ASSERT_EQUAL(dw_odata_key_predicate(&b, acc, &op, &err), DW_OK);
    DW_ASSERT_STREQ(b.data, "(01234567-89ab-cdef-0123-456789abcdef)");
    dw_buf_reset(&b);
    op.columns = cols4;
    CU_ASSERT_EQUAL(dw_odata_key_predicate(&b, acc, &op, &err), DW_ERR_TARGET);
    DW_ASSERT_CONTAINS(err.message, "neither the key nor an alternate key");
    dw_buf_cleanup(&b);
    dw_odata_metadata_free(m);
    dw_odata_metadata_free(c);
}

static void test_refused(void)
{
    expect_bad("", "no root element");
    expect_bad("<?xml version=\"1.0\"?>", "no root element");
    expect_bad("<!DOCTYPE x [<!ENTITY a \"b\">]><x/>", "document type declaration");
    expect_bad("<a><b></a></b>", "mismatched end tag");
    expect_bad("<a><b>", "ends inside an element");
    expect_bad("<a/><b/>", "more than one root element");
    expect_bad("<a x=1/>", "quoted attribute value");
    expect_bad("<a x=\"1/>", "unterminated");
    expect_bad("<a x=\"&bogus;\"><Schema Namespace=\"&bogus;\"/></a>", "entity reference");
    expect_bad("<a><!-- never closed </a>", "unterminated comment");
    expect_bad("<Schema Namespace=\"N\"><EntityContainer><EntitySet Name=\"S\" "
               "EntityType=\"N.Missing\"/></EntityContainer></Schema>", "unknown entity type");
    expect_bad("<Schema Namespace=\"N\"><EntityType Name=\"T\"><Key><PropertyRef Name=\"k\"/>"
               "</Key></EntityType><EntityContainer><EntitySet Name=\"S\" EntityType=\"N.T\"/>"
               "</EntityContainer></Schema>", "not one of its properties");
    expect_bad("<Schema Namespace=\"N\"><EntityType Name=\"T\" BaseType=\"N.T\"/>"
               "<EntityContainer><EntitySet Name=\"S\" EntityType=\"N.T\"/></EntityContainer>"
               "</Schema>", "cycle");
    expect_bad("<Schema Namespace=\"N\"><EntityType Name=\"T\"/><EntityContainer>"
               "<EntitySet Name=\"S\" EntityType=\"N.T\"/><EntitySet Name=\"S\" "
               "EntityType=\"N.T\"/></EntityContainer></Schema>", "declared twice");
    {
        /* deep nesting is refused, not a stack overflow */
        struct dw_buf b;

        dw_buf_init(&b);
        for (int i = 0; i < 200; i++)
            dw_buf_puts(&b, "<a>");
        for (int i = 0; i < 200; i++)
            dw_buf_puts(&b, "</a>");
        expect_bad(b.data, "nested too deeply");
        dw_buf_cleanup(&b);
    }
}

static void test_entities_and_keyless(void)
{
    static const char doc[] =
        "<Schema Namespace=\"N\"><EntityType Name=\"T\"><Property Name=\"a&#x20;b&#65;&lt;\" "
        "Type='Edm.String'/></EntityType><EntityContainer><EntitySet Name=\"S\" "
        "EntityType=\"N.T\"/></EntityContainer></Schema>";
    struct dw_odata_metadata *m = parse_ok(doc);
    const struct dw_odata_set *s = dw_odata_metadata_set(m, "S");

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(s->nkey, 0);   /* keyless: accepted here, refused by check_key */
    CU_ASSERT_PTR_NOT_NULL(dw_odata_set_property(s, "a bA<"));
    dw_odata_metadata_free(m);
}

/* Every prefix of a real document either parses or fails cleanly. */
static void test_prefixes(void)
{
    size_t n = strlen(dv_doc);

    for (size_t i = 0; i < n; i++) {
        struct dw_odata_metadata *m = NULL;
        struct dw_error err;
        dw_errcode rc;

        dw_error_clear(&err);
        rc = dw_odata_metadata_parse(dv_doc, i, &m, &err);
        CU_ASSERT(rc == DW_ERR_PROTOCOL || (rc == DW_OK && m));
        dw_odata_metadata_free(m);
    }
}

static const struct dw_cunit_test tests[] = {
    {"SAP CAP's $metadata", test_cap},
    {"Dataverse's shape: alias, base types, alternate keys", test_dataverse_shape},
    {"key predicates", test_key_predicate},
    {"refused documents", test_refused},
    {"character references, keyless types", test_entities_and_keyless},
    {"every prefix parses or fails cleanly", test_prefixes},
};

DW_CUNIT_MAIN("odata metadata", tests)
